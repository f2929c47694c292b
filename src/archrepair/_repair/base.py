"""One interface for every repair method (design rule "comparable baselines"), and the template
that gives every method the same life: a seeded copy of the model, one deadline, training, and the
same rule for keeping the better of the original and the repaired model.

A method writes only what is its own: :meth:`Repairer.train` (train a copy of the model, return a
:class:`Candidate`) and, if its epoch budget is spent on more than one phase,
:attr:`Repairer.phases` with :meth:`Repairer.set_phase_epochs`. See ``methods/`` for examples.
"""

from __future__ import annotations

import copy
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..budget import Budget, Deadline
from ..data import BatchLoader, FailureSplit
from ..errors import ArchRepairError
from ..evaluate import predict, predict_logits
from .block_inputs import BlockView
from .keep import describe, keep_choice
from .task import RepairTask


@dataclass
class Candidate:
    """What a method's training produced, before the choice between it and the original model:
    the repaired ``model``, method-specific ``details`` (histories, the localisation, the unit it
    trained), seconds per phase, and for block-level methods the ``block`` (and the searched
    ``genotype``, when the block's architecture changed); ``view``: the cached inputs of the unit it
    trained (:meth:`RepairTask.block_view`), which the final choice reuses. ``label`` names it among
    a method's options (``None``: the method's name); ``alternatives``: further options, ordered best
    validated first after this one, that the keep rule tests beside it (:func:`keep_better`)."""

    model: nn.Module
    details: dict = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    block: str | None = None
    genotype: dict | None = None
    view: BlockView | None = None
    label: str | None = None
    alternatives: list[Candidate] = field(default_factory=list)


@dataclass
class RepairResult:
    """A repaired model and what the method did. ``kept`` says whether the repaired model or the
    original won by the keep rule (``keep``: its record, :func:`.keep.keep_decision`, with the old
    rule's decision on the validation split beside it: accuracy, ties broken by the mean
    cross-entropy ``val_loss_*``), and ``model`` is the winner; ``candidate`` is the
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
    keep: dict = field(default_factory=dict)


class Repairer(ABC):
    """Base class of every repair method: ``repair(task)`` returns a :class:`RepairResult` and never
    modifies ``task.model``.

    The template :meth:`repair` seeds torch with the task's seed, starts the deadline of
    ``budget.seconds``, calls :meth:`train`, and decides between the original and the candidate by
    the keep rule (:func:`keep_better`). ``phases`` names what the epoch budget is spent on, in order; the budget
    is split evenly between them (the last takes the remainder) and each share handed to
    :meth:`set_phase_epochs`. ``work_dir``: where a resumable method keeps its per-epoch state.
    """

    name: str = "repairer"
    phases: tuple[str, ...] = ("train",)

    def __init__(self, log: Callable[[str], None] | None = None) -> None:
        self.log = log or (lambda message: None)
        self.budget = Budget()
        self.work_dir: Path | None = None
        self.clock: Callable[[], float] = time.perf_counter  # what the deadline reads (a test may inject one)

    def note(self, details: dict, text: str) -> None:
        """Say ``text`` (one line: something that did not happen as the user may expect) in the log and
        in ``details["notes"]``, which the console summary, ``report.md`` and comparison rows show."""
        details.setdefault("notes", []).append(text)
        self.log(f"{self.name}: note: {text}")

    def repair(self, task: RepairTask) -> RepairResult:
        """Repair ``task.model`` on ``task``'s data (the template every method shares)."""
        deadline = self.budget.deadline(self.clock)
        torch.manual_seed(task.seed)
        candidate = self.train(task, deadline)
        if deadline.checks.first_expired == 1:
            self.note(candidate.details, f"the budget ({self.budget.describe()}) was spent at the first step: at most "
                                         "one training step was taken, so the candidate is barely trained; give a "
                                         "larger --budget-seconds")
        if candidate.genotype is None and same_weights(task.model, candidate.model):
            stop = candidate.details.get("stop_reason")
            self.note(candidate.details, "the candidate is the original model: no weight changed"
                      + (f" (training stopped: {stop})" if stop else "") + "; nothing was repaired")
        options = [candidate, *candidate.alternatives]
        for option in options:
            for parameter in option.model.parameters():
                parameter.requires_grad_(True)
        result = keep_better(self.name, task, options)
        self.log(f"validation accuracy (mean loss): original {result.val_accuracy_original:.4f} "
                 f"({result.val_loss_original:.4f}), repaired {result.val_accuracy_repaired:.4f} "
                 f"({result.val_loss_repaired:.4f}); {describe(result.keep)}")
        return result

    @abstractmethod
    def train(self, task: RepairTask, deadline: Deadline) -> Candidate:
        """Train a copy of ``task.model`` (never the model itself) on ``task``'s fit rows, stopping
        at ``deadline``; early stopping may use ``task.val_indices``."""

    def check(self, model: nn.Module, input_shape: tuple[int, int, int], split: FailureSplit) -> None:
        """Raise :class:`ArchRepairError`, before any work, when this method's settings cannot apply
        to ``model`` (``input_shape``: ``(C, H, W)``) or to ``split``; nothing to check by default."""

    def estimate(self, task: RepairTask) -> dict[str, float]:
        """Estimated seconds of each phase on ``task`` (early stopping off), from a few timed steps
        on copies of the model; ``{}`` for a method that cannot say."""
        return {}

    def set_phase_epochs(self, phase: str, epochs: int) -> None:
        """Spend ``epochs`` passes over the fit data on ``phase`` (one of :attr:`phases`)."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to spend an epoch budget")

    def apply_budget(self, budget: Budget) -> None:
        """Honour ``budget``: its seconds through the deadline, its epochs split between the phases."""
        self.budget = budget
        if budget.epochs is None:
            return
        if budget.epochs < len(self.phases):
            raise ArchRepairError(f"{self.name} needs an epoch budget of at least {len(self.phases)} "
                                  f"({', '.join(self.phases)})")
        share = budget.epochs // len(self.phases)
        for index, phase in enumerate(self.phases):
            last = index == len(self.phases) - 1
            self.set_phase_epochs(phase, budget.epochs - share * index if last else share)


class ConfiguredRepairer(Repairer):
    """A method with one configuration dataclass, ``config`` (``config_type()`` when not given), whose
    ``train`` field (a :class:`~archrepair.train.TrainConfig`) is its weight training: an epoch budget
    sets its epochs. Methods whose budget means something else override :meth:`set_phase_epochs`."""

    config_type: type = object

    def __init__(self, config=None, log: Callable[[str], None] | None = None) -> None:
        super().__init__(log)
        self.config = config if config is not None else self.config_type()

    def set_phase_epochs(self, phase: str, epochs: int) -> None:
        self.config = replace(self.config, train=replace(self.config.train, epochs=epochs))


def keep_better(method: str, task: RepairTask, options: list[Candidate]) -> RepairResult:
    """The result of ``method``: one of its ``options`` (best validated first; one for most methods)
    or a copy of the original (eval mode either way), by the keep rule (:mod:`.keep`): under the
    ``heldout`` protocol an option is returned only when it beats the original on the task's keep
    rows (one-sided exact McNemar, Holm's procedure over the options at family-wise level
    ``task.config.keep_level``), the best validated of those that pass; under ``paper`` (no keep
    rows), the first option when its accuracy on the validation rows is higher, or equal with a lower
    mean cross-entropy (the old rule, recorded either way in ``keep``). Each option's ``view``: the
    cached inputs it shares with the original (it differs from it only from its block on). The rest
    of :class:`RepairResult` (phase seconds, details, block, genotype, ``candidate``: the repaired
    model whichever won) comes from the option returned, else from the first."""
    first = options[0]
    original_val, original_loss = validate(task, task.model, first.view)
    first_val, first_loss = validate(task, first.model, first.view)
    old_rule = "repaired" if (first_val, -first_loss) > (original_val, -original_loss) else "original"
    names = [option.label or method for option in options]
    if task.keep is None:  # the paper's protocol: the old rule decides
        keep = keep_choice(None, None, names, task.config.keep_level, old_rule)
    else:
        keep = keep_choice(keep_right(task, task.model), [keep_right(task, option.model) for option in options], names,
                           task.config.keep_level, old_rule, task.keep.source)
    kept = keep["decision"]
    chosen = options[names.index(keep["chosen"])] if keep["chosen"] is not None else first
    repaired_val, repaired_loss = (first_val, first_loss) if chosen is first else validate(task, chosen.model,
                                                                                           chosen.view)
    model = chosen.model if kept == "repaired" else copy.deepcopy(task.model)
    return RepairResult(method=method, model=model.eval(), kept=kept, val_accuracy_original=original_val,
                        val_accuracy_repaired=repaired_val, val_loss_original=original_loss,
                        val_loss_repaired=repaired_loss, candidate=chosen.model.eval(), keep=keep,
                        phase_seconds=chosen.phase_seconds, details=chosen.details, block=chosen.block,
                        genotype=chosen.genotype)


def validate(task: RepairTask, model: nn.Module, view: BlockView | None = None) -> tuple[float, float]:
    """Accuracy in [0, 1] and mean cross-entropy of ``model`` on the task's validation rows, on the
    cached inputs of ``view`` when it can bind ``model`` (which then differs from the original only
    from the view's block on)."""
    right, loss = _validation_answers(task, model, view)
    return int(right.sum()) / max(len(right), 1), loss


def validation_figures(task: RepairTask, model: nn.Module, view: BlockView | None = None) -> dict[str, float]:
    """``model`` on the task's validation rows (on ``view``'s cached inputs when it can bind it, as
    :func:`validate`): ``val_accuracy`` in [0, 1], ``val_loss`` (mean cross-entropy, nats) and
    ``val_negative_flip_rate``, the share of the rows the original model gets right and ``model``
    gets wrong (the original's answers are computed once per task). With a field set's validation
    rows among them, also ``val_field_accuracy`` and ``val_home_accuracy``: each population's own."""
    right, loss = _validation_answers(task, model, view)
    if "val_right" not in task.memo:
        task.memo["val_right"] = _validation_answers(task, task.model, view)[0]
    original = task.memo["val_right"]
    count = max(len(right), 1)
    figures = {"val_accuracy": int(right.sum()) / count, "val_loss": loss,
               "val_negative_flip_rate": int((original & ~right).sum()) / count}
    in_field = np.isin(task.val_indices, task.repair.field_val_rows)
    if in_field.any():
        figures |= {"val_field_accuracy": float(right[in_field].mean()),
                    "val_home_accuracy": float(right[~in_field].mean()) if (~in_field).any() else None}
    return figures


def _validation_answers(task: RepairTask, model: nn.Module, view: BlockView | None) -> tuple[np.ndarray, float]:
    """``(N,)`` booleans (which validation rows ``model`` gets right) and its mean cross-entropy."""
    bound = view.bind(model) if view is not None else None
    net, loader = (model, task.loader(task.val_indices)) if bound is None else \
        (bound.model, bound.loader(task.val_indices))
    logits, labels = predict(net, loader, task.amp)
    if not len(labels):
        return np.zeros(0, dtype=bool), 0.0
    return (logits.argmax(1) == labels).numpy(), nn.functional.cross_entropy(logits, labels).item()


def same_weights(original: nn.Module, candidate: nn.Module) -> bool:
    """Whether ``candidate`` has exactly ``original``'s weights and buffers (a repair that changed nothing)."""
    mine, theirs = original.state_dict(), candidate.state_dict()
    return mine.keys() == theirs.keys() and all(torch.equal(mine[name], theirs[name].to(mine[name].device))
                                                for name in mine)


def keep_right(task: RepairTask, model: nn.Module) -> np.ndarray:
    """``(N,)`` booleans: which of the task's keep rows ``model`` classifies correctly (the original
    model's are computed once per task)."""
    if model is task.model and "keep_right" in task.memo:
        return task.memo["keep_right"]
    keep = task.keep
    loader = BatchLoader(keep.x, keep.y, task.record.mean, task.record.std, indices=np.arange(len(keep)),
                         device=task.device, channels_last=task.channels_last)
    right = predict_logits(model, loader, task.amp).argmax(1).numpy() == keep.y
    if model is task.model:
        task.memo["keep_right"] = right
    return right


def image_passes(task: RepairTask, images: float) -> float:
    """``images`` that went through the model's input (its first layer), as passes over the task's
    fit rows: what a method's epochs cost in whole-image work (a cached block input counts once)."""
    return round(images / max(len(task.fit_indices), 1), 3)


def first_off(*statuses: str) -> str:
    """The cache status a report gives for several phases: the first ``"off: ..."``, else ``"on"``."""
    return next((status for status in statuses if status != "on"), "on")
