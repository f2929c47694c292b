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
    deadlines :meth:`sooner` derives). ``anneal_seconds``: the length of the window this deadline
    ends, when a learning-rate schedule should finish annealing by it (:meth:`time_progress`;
    ``None``: schedules follow their steps only)."""

    at: float | None = None
    clock: Callable[[], float] = field(default=time.perf_counter, compare=False, repr=False)
    checks: Checks = field(default_factory=Checks, compare=False, repr=False)
    anneal_seconds: float | None = None

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

    def time_progress(self) -> float:
        """How far through its annealing window this deadline is, in [0, 1] (0 without a window):
        ``1 - left / anneal_seconds``; spread over processes, the same in all (every process must ask)."""
        if self.anneal_seconds is None or self.at is None:
            return 0.0
        return min(max(1.0 - self.left() / max(self.anneal_seconds, 1e-9), 0.0), 1.0)

    def sooner(self, seconds: float | None, anneal: bool = False) -> Deadline:
        """The earlier of this deadline and ``seconds`` from now (``None``: this one); with ``anneal``,
        schedules trained against it anneal over the seconds from now to it."""
        if seconds is None and not anneal:
            return self
        now = self.clock()
        at = self.at if seconds is None else (now + seconds if self.at is None else min(self.at, now + seconds))
        window = None if at is None else at - now
        return Deadline(at, self.clock, self.checks, window if anneal else self.anneal_seconds)


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
