"""MODE (Ma, Liu, Lee, Zhang, Grama; ESEC/FSE 2018): retraining on inputs chosen by differential
heat maps in feature space. No public code exists; the constants below are ours, stated here and in
every report.

1. Buggy labels: the labels of ``D_fail``, most failures first. A label is *overfitting* when the
   model's accuracy on its fit rows exceeds that on its validation rows by more than ``gap``, else
   *underfitting*.
2. Layer selection: at every block output (global-average-pooled, standardised), a linear probe
   (softmax, full-batch Adam for ``probe_epochs`` epochs) is fitted on half of ``probe_rows`` fit
   rows and scored per label on the other half; a label's layer is the first block after which its
   probe accuracy stops improving (the last block if it always does).
3. Heat maps at that layer (mean standardised features): ``HM_correct`` (the label's rows the model
   gets right), ``HM_FP`` (other rows it predicts as the label), ``HM_FN`` (the label's rows it gets
   wrong). Differential map: underfitting ``HM_correct - HM_FP`` (``- HM_FN`` without false
   positives), the features that separate the label from its confusions; overfitting
   ``HM_FN - HM_correct``, the features specific to its failures.
4. Input selection: the label's fit rows scored by the dot product of their features with the map;
   a round's batch is ``round_share`` of the fit rows, ``ratio`` of it the label's most similar rows
   (underfitting; least similar when overfitting) plus the label's ``D_fail`` rows, the rest random
   fit rows of all labels (so the batch stays balanced).
5. Retraining: one pass of the shared weight training over the batch (the whole network); the
   round is kept if the validation accuracy improved (ties: the mean loss), else undone, and the
   next label follows after ``label_rounds`` rounds or the first round that is undone. Passes over
   the buggy labels repeat until one keeps no round, or the budget ends.

Features come from the model under repair once, before retraining (one pass over the fit rows).

Example:
    >>> result = get_repairer("mode").repair(task)   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from ...budget import Deadline
from ...data.splits import stratified_sample
from ...errors import ArchRepairError
from ...hooks import run_with_hooks
from ...models import default_blocks, get_block
from ...train import TrainConfig, fit
from ..base import Candidate, ConfiguredRepairer, image_passes
from ..estimate import network_step_seconds, pass_seconds
from ..registry import RepairSettings, default_train, register_repairer
from ..task import RepairTask


@dataclass
class ModeConfig:
    """See the module docstring. ``blocks``: the layers probed (default: the model's blocks);
    ``epochs``: stop once the retrained rows add up to this many passes over the fit rows
    (``None``: when a pass over the buggy labels keeps no round)."""

    probe_rows: int = 2000
    probe_epochs: int = 100
    ratio: float = 0.5
    round_share: float = 0.1
    gap: float = 0.10
    label_rounds: int = 5
    blocks: list[str] | None = None
    epochs: int | None = None
    train: TrainConfig = field(default_factory=default_train)

    def __post_init__(self) -> None:
        if not 0 < self.ratio <= 1 or not 0 < self.round_share <= 1 or self.label_rounds < 1:
            raise ArchRepairError("MODE needs a ratio and a round share in (0, 1] and at least one round per label")


def block_features(model: nn.Module, task: RepairTask, rows: np.ndarray, blocks: list[str]) -> dict[str, torch.Tensor]:
    """Each block's output on ``rows`` (eval mode), global-average-pooled to ``(N, channels)``."""
    captured: dict[str, list[torch.Tensor]] = {block: [] for block in blocks}

    def keep(block):
        return lambda module, inputs, output: captured[block].append(
            (output.mean((2, 3)) if output.dim() == 4 else output.flatten(1)).float().cpu())

    hooks = [(get_block(model, block), keep(block)) for block in blocks]
    for images, _ in task.loader(rows):
        run_with_hooks(model, images, forward_hooks=hooks)
    return {block: torch.cat(values) for block, values in captured.items()}


def standardised(values: torch.Tensor) -> torch.Tensor:
    return (values - values.mean(0)) / values.std(0).clamp_min(1e-6)


def probe_accuracy(features: torch.Tensor, labels: torch.Tensor, classes: int, epochs: int, seed: int) -> np.ndarray:
    """Per-label accuracy ``(classes,)`` on the second half of the rows of a softmax probe fitted on
    the first half (full-batch Adam, ``epochs`` steps); NaN for a label absent there."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    train, test = order[:len(order) // 2], order[len(order) // 2:]
    probe = nn.Linear(features.shape[1], classes)
    optimiser = torch.optim.Adam(probe.parameters(), lr=0.05)
    for _ in range(epochs):
        optimiser.zero_grad()
        nn.functional.cross_entropy(probe(features[train]), labels[train]).backward()
        optimiser.step()
    with torch.no_grad():
        right = (probe(features[test]).argmax(1) == labels[test]).float()
    return np.array([right[labels[test] == c].mean().item() if (labels[test] == c).any() else np.nan
                     for c in range(classes)])


def chosen_layer(accuracies: list[np.ndarray], label: int, blocks: list[str]) -> str:
    """The first block after which ``label``'s probe accuracy stops improving (else the last)."""
    for index in range(len(blocks) - 1):
        if not accuracies[index + 1][label] > accuracies[index][label]:
            return blocks[index]
    return blocks[-1]


def differential_map(features: torch.Tensor, labels: np.ndarray, predicted: np.ndarray, label: int,
                     overfitting: bool) -> torch.Tensor:
    """The differential heat map ``(D,)`` of ``label`` from standardised ``features`` ``(N, D)``."""
    def mean(mask: np.ndarray) -> torch.Tensor | None:
        return features[torch.as_tensor(mask)].mean(0) if mask.any() else None

    correct = mean((labels == label) & (predicted == label))
    false_negative = mean((labels == label) & (predicted != label))
    false_positive = mean((labels != label) & (predicted == label))
    zero = torch.zeros(features.shape[1])
    correct = zero if correct is None else correct
    if overfitting:
        return (zero if false_negative is None else false_negative) - correct
    confusion = false_positive if false_positive is not None else false_negative
    return correct - (zero if confusion is None else confusion)


def select_inputs(scores: np.ndarray, rows: np.ndarray, count: int, similar: bool) -> np.ndarray:
    """The ``count`` rows with the highest ``scores`` (``similar``) or the lowest."""
    order = np.argsort(-scores if similar else scores, kind="stable")
    return rows[order[:count]]


class Mode(ConfiguredRepairer):
    """Retrain the whole network on inputs chosen, label by label, by differential heat maps in
    feature space; see the module docstring."""

    config_type = ModeConfig
    name = "mode"
    phases = ("repair",)

    def set_phase_epochs(self, phase: str, epochs: int) -> None:
        self.config = replace(self.config, epochs=epochs)

    def estimate(self, task: RepairTask) -> dict[str, float]:
        """The diagnosis: one pass over the fit rows (the probes' seconds are small beside it); the
        retraining: one pass over the buggy labels with every label's rounds kept (timed SGD steps of
        the whole network and a validation pass per round), or the epoch budget's rows."""
        config, fit_rows = self.config, task.fit_indices
        step, _ = network_step_seconds(task, config.train.batch_size)
        failures = task.repair.y[task.fit_failures]
        batch = max(2, round(config.round_share * len(fit_rows)))
        rounds = len(np.unique(failures)) * config.label_rounds
        if config.epochs is not None:
            rounds = -(-config.epochs * len(fit_rows) // batch)
        per_round = -(-batch // config.train.batch_size) * step + pass_seconds(task.model, task, task.val_indices)
        return {"diagnose": pass_seconds(task.model, task, fit_rows), "retrain": rounds * per_round}

    def train(self, task: RepairTask, deadline: Deadline) -> Candidate:
        started, config = time.perf_counter(), self.config
        model = copy.deepcopy(task.model)
        blocks = config.blocks or default_blocks(model)
        fit_rows, labels = task.fit_indices, task.repair.y
        predicted = task.original_logits().argmax(1).numpy()
        failures = task.fit_failures
        buggy = [int(c) for c in np.argsort(-np.bincount(labels[failures], minlength=task.record.num_classes),
                                            kind="stable") if (labels[failures] == c).any()]
        features = {block: standardised(values) for block, values in block_features(model, task, fit_rows, blocks).items()}
        probes = stratified_sample(np.arange(len(fit_rows)), labels[fit_rows], config.probe_rows, task.seed + 27)
        probe_labels = torch.as_tensor(labels[fit_rows[probes]], dtype=torch.long)
        accuracies = [probe_accuracy(features[block][probes], probe_labels, task.record.num_classes,
                                     config.probe_epochs, task.seed) for block in blocks]
        diagnosed = time.perf_counter()
        best = self._validate(task, model)
        best_state = copy.deepcopy(model.state_dict())
        rng = np.random.default_rng(task.seed + 29)
        batch = max(2, round(config.round_share * len(fit_rows)))
        trained_rows, records, stop_reason, passes = 0, [], "unchanged", 0
        plans = [self._plan(label, features, accuracies, blocks, task, predicted, batch) for label in buggy]

        def label_rounds(plan: dict) -> bool:
            """Up to ``label_rounds`` rounds for one label, until one is undone; whether any was kept."""
            nonlocal best, best_state, trained_rows, stop_reason
            kept_any = False
            for round_ in range(config.label_rounds):
                selected = np.union1d(plan["chosen"], failures[labels[failures] == plan["label"]])
                padding = rng.choice(fit_rows, size=max(batch - len(selected), 0), replace=False)
                rows = np.concatenate([selected, padding])
                fit(model, task.loader(rows, config.train.batch_size, shuffle=True, seed_offset=37 + len(records)),
                    task.schedule(config.train, epochs=1, patience=None), description=self.name,
                    deadline=deadline)
                trained_rows += len(rows)
                score = self._validate(task, model)
                kept = score > best
                records.append({"pass": passes, "label": plan["label"], "kind": plan["kind"], "layer": plan["layer"],
                                "round": round_, "rows": int(len(rows)), "selected": int(len(selected)),
                                "val_accuracy": score[0], "kept": kept})
                if kept:
                    best, best_state, kept_any = score, copy.deepcopy(model.state_dict()), True
                else:
                    model.load_state_dict(best_state)
                if deadline.expired() or (config.epochs is not None and trained_rows >= config.epochs * len(fit_rows)):
                    stop_reason = "budget"
                if stop_reason == "budget" or not kept:
                    break
            return kept_any

        while stop_reason == "unchanged":
            kept_in_pass = False
            for plan in plans:
                kept_in_pass |= label_rounds(plan)
                if stop_reason == "budget":
                    break
            passes += 1
            if stop_reason != "budget" and not kept_in_pass:
                stop_reason = "no round kept in a pass"
        model.load_state_dict(best_state)
        self.log(f"{self.name}: {len(records)} rounds in {passes} passes over labels {buggy}, validation accuracy "
                 f"{best[0]:.4f} ({stop_reason})")
        details = {"buggy_labels": buggy, "plans": [{k: v for k, v in plan.items() if k != "chosen"} for plan in plans],
                   "probe_accuracy": {b: a.tolist() for b, a in zip(blocks, accuracies)}, "rounds": records, "stop_reason": stop_reason,
                   "image_passes": image_passes(task, len(fit_rows) + trained_rows),
                   "prefix_cache": "off: the whole network trains"}
        return Candidate(model, details, {"diagnose": diagnosed - started, "retrain": time.perf_counter() - diagnosed})

    def _plan(self, label: int, features: dict[str, torch.Tensor], accuracies: list[np.ndarray], blocks: list[str],
              task: RepairTask, predicted: np.ndarray, batch: int) -> dict:
        """``label``'s diagnosis, layer and selected rows (the ``ratio`` share of a round's batch)."""
        fit_rows, labels = task.fit_indices, task.repair.y[task.fit_indices]
        kind = "overfitting" if self._gap(task, predicted, label) > self.config.gap else "underfitting"
        layer = chosen_layer(accuracies, label, blocks)
        direction = differential_map(features[layer], labels, predicted[fit_rows], label, kind == "overfitting")
        mine = np.flatnonzero(labels == label)
        scores = (features[layer][torch.as_tensor(mine)] @ direction).numpy()
        chosen = select_inputs(scores, fit_rows[mine], round(self.config.ratio * batch), kind == "underfitting")
        return {"label": label, "kind": kind, "layer": layer, "chosen": chosen}

    @staticmethod
    def _validate(task: RepairTask, model: nn.Module) -> tuple[float, float]:
        """Validation accuracy and negated mean loss: larger is better (ties broken by the loss)."""
        accuracy, loss = task.validate(model)
        return accuracy, -loss

    @staticmethod
    def _gap(task: RepairTask, predicted: np.ndarray, label: int) -> float:
        """The original model's accuracy on ``label``'s training fit rows minus that on its validation rows."""
        def accuracy(rows: np.ndarray) -> float:
            rows = rows[task.repair.y[rows] == label]
            return float((predicted[rows] == label).mean()) if len(rows) else 0.0

        training = task.fit_others
        return accuracy(training) - accuracy(task.val_indices)


@register_repairer("mode", "baseline: retrain on inputs chosen label by label by differential heat maps in feature "
                           "space (Ma et al.)")
def mode(settings: RepairSettings) -> Mode:
    return Mode(ModeConfig(train=settings.train))
