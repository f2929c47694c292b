"""A shared budget for repair methods: training epochs, wall-clock seconds, or both.

Every repair method honours the same :class:`Budget`, so a comparison gives each the same room.
``epochs`` counts passes over the fit part of ``D_repair`` summed over a method's training phases
(ArchRepair splits them between search and fine-tuning); ``seconds`` is a wall-clock limit on the
whole method, checked after every optimisation step, so a method stops at the budget rather than
at the end of an epoch past it.

Example:
    >>> deadline = Budget(seconds=60).deadline()
    >>> deadline.expired()
    False
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import distributed
from .errors import ArchRepairError


@dataclass
class Checks:
    """How often a run asked whether its deadline had passed (methods ask once per step), and at
    which of those checks it first had (``None``: never)."""

    count: int = 0
    first_expired: int | None = None


@dataclass(frozen=True)
class Deadline:
    """An absolute point on ``clock``'s time line (seconds; ``time.perf_counter`` unless a test injects
    another); ``at`` ``None``: never. ``checks`` counts the calls of :meth:`expired` (shared by the
    deadlines :meth:`sooner` derives)."""

    at: float | None = None
    clock: Callable[[], float] = field(default=time.perf_counter, compare=False, repr=False)
    checks: Checks = field(default_factory=Checks, compare=False, repr=False)

    @classmethod
    def after(cls, seconds: float | None, clock: Callable[[], float] = time.perf_counter) -> Deadline:
        return cls(None if seconds is None else clock() + seconds, clock)

    def expired(self) -> bool:
        """Whether the deadline has passed; spread over processes, whether it has in any of them
        (every process must ask at the same step), so that all stop at the same step."""
        passed = self.at is not None and distributed.any_rank(self.clock() >= self.at)
        self.checks.count += 1
        if passed and self.checks.first_expired is None:
            self.checks.first_expired = self.checks.count
        return passed

    def left(self) -> float | None:
        """Seconds until the deadline (0 once past it), ``None`` without one; spread over processes,
        the least of theirs (every process must ask)."""
        return None if self.at is None else distributed.least(max(self.at - self.clock(), 0.0))

    def sooner(self, seconds: float | None) -> Deadline:
        """The earlier of this deadline and ``seconds`` from now (``None``: this one)."""
        if seconds is None:
            return self
        at = self.clock() + seconds
        return Deadline(at if self.at is None else min(self.at, at), self.clock, self.checks)


@dataclass(frozen=True)
class Budget:
    """``epochs``: passes over the fit data per method (``None``: each method's own setting);
    ``seconds``: wall-clock limit per method run (``None``: none)."""

    epochs: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.epochs is not None and self.epochs < 1:
            raise ArchRepairError(f"the epoch budget must be at least 1, got {self.epochs}")
        if self.seconds is not None and self.seconds <= 0:
            raise ArchRepairError(f"the time budget must be positive, got {self.seconds} s")

    def deadline(self, clock: Callable[[], float] = time.perf_counter) -> Deadline:
        """The deadline of a run that starts now (on ``clock``)."""
        return Deadline.after(self.seconds, clock)

    def describe(self) -> str:
        parts = [f"{self.epochs} epochs" if self.epochs else "", f"{self.seconds:g} s" if self.seconds else ""]
        return " and ".join(p for p in parts if p) or "each method's own settings"
