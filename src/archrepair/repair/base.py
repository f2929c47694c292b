"""One interface for every repair method (design rule "comparable baselines")."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from torch import nn

from ..budget import Budget
from ..train import accuracy_and_loss
from .task import RepairTask


@dataclass
class RepairResult:
    """A repaired model and what the method did. ``kept`` says whether the repaired model or the
    original won on the validation split (accuracy, ties broken by the mean cross-entropy
    ``val_loss_*``), and ``model`` is the winner; ``candidate`` is the
    repaired model whichever won (to study what the repair did); ``details`` holds
    method-specific records (the searched architecture, the localisation, per-phase histories);
    ``phase_seconds`` times each phase."""

    method: str
    model: nn.Module
    kept: str
    val_accuracy_original: float
    val_accuracy_repaired: float
    phase_seconds: dict[str, float] = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    block: str | None = None
    genotype: dict | None = None
    candidate: nn.Module | None = None
    val_loss_original: float | None = None
    val_loss_repaired: float | None = None


class Repairer(ABC):
    """Base class: ``repair(task)`` returns a :class:`RepairResult` and never modifies ``task.model``.
    ``budget.seconds`` bounds the wall-clock time of ``repair`` (every training loop stops at the
    deadline); the epoch budget is applied to the method's settings by :func:`get_repairer`."""

    name: str = "repairer"
    budget: Budget = Budget()

    @abstractmethod
    def repair(self, task: RepairTask) -> RepairResult:
        """Repair ``task.model`` on ``task``'s data."""


def keep_better(method: str, task: RepairTask, repaired: nn.Module, **fields) -> RepairResult:
    """The result of ``method``: ``repaired`` if its accuracy on the task's validation split is higher
    than the original model's, or equal with a lower mean cross-entropy (small validation splits
    tie often), else a copy of the original (eval mode either way). ``fields`` fill
    the rest of :class:`RepairResult` (phase seconds, details, block, genotype). The repaired
    model stays available as ``candidate`` either way."""
    val = task.loader(task.val_indices)
    original_val, original_loss = accuracy_and_loss(task.model, val, task.amp)
    repaired_val, repaired_loss = accuracy_and_loss(repaired, val, task.amp)
    kept = "repaired" if (repaired_val, -repaired_loss) > (original_val, -original_loss) else "original"
    model = repaired if kept == "repaired" else copy.deepcopy(task.model)
    return RepairResult(method=method, model=model.eval(), kept=kept, val_accuracy_original=original_val,
                        val_accuracy_repaired=repaired_val, val_loss_original=original_loss,
                        val_loss_repaired=repaired_loss, candidate=repaired.eval(), **fields)
