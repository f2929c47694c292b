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
from dataclasses import dataclass

from .errors import ArchRepairError


@dataclass(frozen=True)
class Deadline:
    """An absolute point on ``time.perf_counter()``'s clock (seconds); ``None``: never."""

    at: float | None = None

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        return cls(None if seconds is None else time.perf_counter() + seconds)

    def expired(self) -> bool:
        return self.at is not None and time.perf_counter() >= self.at


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

    def deadline(self) -> Deadline:
        """The deadline of a run that starts now."""
        return Deadline.after(self.seconds)

    def describe(self) -> str:
        parts = [f"{self.epochs} epochs" if self.epochs else "", f"{self.seconds:g} s" if self.seconds else ""]
        return " and ".join(p for p in parts if p) or "each method's own settings"
