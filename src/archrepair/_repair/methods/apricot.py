"""Apricot (Zhang and Chan, ASE 2019): weight adjustment guided by reduced models.

1. ``reduced_models`` reduced models (rDLMs), each the model under repair fine-tuned for
   ``reduced_epochs`` on a random ``reduced_share`` of the fit rows (warm-started: a documented
   departure from the original's models trained from scratch, about 240 fine-tuning epochs in all;
   ``from_scratch=True`` re-initialises them first).
2. For every failing example (``D_fail`` and the training rows the model gets wrong) that the current
   model misclassifies, split the rDLMs into those that classify it correctly (``C``) and the rest
   (``I``); skip it if either is empty; else move every weight toward ``C``'s mean and away from
   ``I``'s (the direction of the paper's abstract)::

       w <- w - eta * [p_C (w - mean_C) - p_I (w - mean_I)],   p_C = |C| / k, p_I = |I| / k

   (``sign="replication"``: the opposite sign, as the public replication's ``both-org`` computes).
3. After every ``chunk`` failing examples, validate: keep the weights if the validation accuracy
   improved, else restore the best. After each pass over the failing examples, fine-tune one epoch on
   the fit rows (the shared weight training) and validate the same way. Stop at the budget, or after
   ``patience`` chunks without improvement.

Parameters are adjusted, BatchNorm running statistics are not (as in the replication).

Example:
    >>> result = get_repairer("apricot").repair(task)   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from ...budget import Deadline
from ...errors import ArchRepairError
from ...evaluate import predict_logits
from ...train import TrainConfig, fit
from ..base import Candidate, ConfiguredRepairer, image_passes
from ..estimate import network_step_seconds, pass_seconds
from ..registry import RepairSettings, default_train, register_repairer
from ..task import RepairTask

SIGNS = ("toward", "replication")


@dataclass
class ApricotConfig:
    """See the module docstring. ``train``: the fine-tuning between rounds (``round_epochs`` each; 0:
    none) and of the rDLMs (``reduced_epochs``); ``rounds``: passes over the failing examples
    (``None``: until the budget or the patience runs out)."""

    reduced_models: int = 10
    reduced_share: float = 0.2
    reduced_epochs: int = 1
    from_scratch: bool = False
    eta: float = 1e-3
    chunk: int = 50
    sign: str = "toward"
    patience: int = 100
    rounds: int | None = None
    round_epochs: int = 1
    train: TrainConfig = field(default_factory=default_train)

    def __post_init__(self) -> None:
        if self.sign not in SIGNS:
            raise ArchRepairError(f"unknown Apricot sign {self.sign!r}; choose one of {', '.join(SIGNS)}")
        if self.reduced_models < 2 or not 0 < self.reduced_share <= 1 or self.chunk < 1:
            raise ArchRepairError("Apricot needs at least 2 reduced models, a share in (0, 1] and a chunk of 1 or more")


def adjust(weights: torch.Tensor, reduced: torch.Tensor, correct: torch.Tensor, eta: float,
           sign: str = "toward") -> torch.Tensor | None:
    """One Apricot adjustment of the flat ``weights`` ``(P,)`` for one failing example, from the
    rDLMs' flat weights ``reduced`` ``(k, P)`` and which of them classify it correctly ``correct``
    ``(k,)`` bool; ``None`` when all or none of them do (the example is skipped)."""
    count = int(correct.sum())
    if count in (0, len(correct)):
        return None
    share_correct, share_incorrect = count / len(correct), 1 - count / len(correct)
    step = share_correct * (weights - reduced[correct].mean(0)) - share_incorrect * (weights - reduced[~correct].mean(0))
    return weights - eta * step if sign == "toward" else weights + eta * step


class Apricot(ConfiguredRepairer):
    """Adjust the whole network's weights toward the reduced models that get a failure right; see
    the module docstring."""

    config_type = ApricotConfig
    name = "apricot"
    phases = ("repair",)

    def set_phase_epochs(self, phase: str, epochs: int) -> None:
        """An epoch budget bounds the rounds (each ends with one fine-tuning epoch)."""
        self.config = replace(self.config, rounds=epochs)

    def estimate(self, task: RepairTask) -> dict[str, float]:
        """Timed SGD steps of the whole network scaled to the rDLMs' epochs; per round, a prediction
        and a validation pass per chunk, one fine-tuning epoch and its validation; the rounds given,
        else as many as the patience allows without improvement."""
        config, fit_rows = self.config, task.fit_indices
        step, steps_per_epoch = network_step_seconds(task, config.train.batch_size)
        reduced_steps = -(-round(config.reduced_share * len(fit_rows)) // config.train.batch_size)
        failing = self._failing_rows(task)
        chunks = -(-len(failing) // config.chunk)
        validation = pass_seconds(task.model, task, task.val_indices)
        rounds = config.rounds or -(-config.patience // (chunks + 1))
        per_round = (chunks * validation + pass_seconds(task.model, task, failing)
                     + config.round_epochs * (steps_per_epoch * step + validation))
        return {"reduced_models": config.reduced_models * config.reduced_epochs * reduced_steps * step
                + config.reduced_models * pass_seconds(task.model, task, failing), "adjust": rounds * per_round}

    def train(self, task: RepairTask, deadline: Deadline) -> Candidate:
        started, config = time.perf_counter(), self.config
        model = copy.deepcopy(task.model)
        reduced = self._reduced_models(task, model, deadline)
        made = time.perf_counter()
        failing = self._failing_rows(task)
        reduced_correct = torch.stack([torch.as_tensor(
            predict_logits(r, task.loader(failing), task.amp).argmax(1).numpy() == task.repair.y[failing])
            for r in reduced])  # (k, F)
        flat_reduced = torch.stack([parameters_to_vector(r.parameters()).detach() for r in reduced])
        del reduced
        best_accuracy = self._validate(task, model)
        best = parameters_to_vector(model.parameters()).detach().clone()
        counts = {"adjusted": 0, "skipped": 0, "kept": 0, "restored": 0}
        curve, waited, rounds, stop_reason = [best_accuracy], 0, 0, "rounds"
        rng = np.random.default_rng(task.seed + 21)

        def check() -> None:
            nonlocal best, best_accuracy, waited
            accuracy = self._validate(task, model)
            curve.append(accuracy)
            if accuracy > best_accuracy:
                best, best_accuracy, waited = parameters_to_vector(model.parameters()).detach().clone(), accuracy, 0
                counts["kept"] += 1
            else:
                vector_to_parameters(best, model.parameters())
                counts["restored"] += 1
                waited += 1

        while config.rounds is None or rounds < config.rounds:
            order = rng.permutation(len(failing))
            for start in range(0, len(order), config.chunk):
                chunk = order[start:start + config.chunk]
                wrong = predict_logits(model, task.loader(failing[chunk]), task.amp).argmax(1).numpy() != \
                    task.repair.y[failing[chunk]]
                weights = parameters_to_vector(model.parameters()).detach()
                for index in chunk[wrong]:
                    moved = adjust(weights, flat_reduced, reduced_correct[:, index], config.eta, config.sign)
                    counts["skipped" if moved is None else "adjusted"] += 1
                    weights = weights if moved is None else moved
                vector_to_parameters(weights, model.parameters())
                check()
                if deadline.expired() or waited >= config.patience:
                    break
            if deadline.expired() or waited >= config.patience:
                stop_reason = "budget" if deadline.expired() else "patience"
                break
            if config.round_epochs:
                fit(model, task.loader(task.fit_indices, config.train.batch_size, shuffle=True, seed_offset=23 + rounds),
                    task.schedule(config.train, epochs=config.round_epochs, patience=None),
                    description=self.name, deadline=deadline)
                check()
            rounds += 1
            if deadline.expired():
                stop_reason = "budget"
                break
        vector_to_parameters(best, model.parameters())
        self.log(f"{self.name}: {counts['adjusted']} adjustments, {counts['skipped']} skipped, {rounds} rounds, "
                 f"validation {curve[0]:.4f} -> {best_accuracy:.4f} ({stop_reason})")
        fit_rows = len(task.fit_indices)
        images = (config.reduced_models * config.reduced_epochs * config.reduced_share * fit_rows
                  + (config.reduced_models + 1) * len(failing) + rounds * config.round_epochs * fit_rows)
        details = {"reduced_models": config.reduced_models, "from_scratch": config.from_scratch, "sign": config.sign,
                   "failing_examples": int(len(failing)), **counts, "rounds": rounds, "validation": curve,
                   "stop_reason": stop_reason, "image_passes": image_passes(task, images), "prefix_cache": "off: the whole network trains"}
        return Candidate(model, details, {"reduced_models": made - started, "adjust": time.perf_counter() - made})

    def _reduced_models(self, task: RepairTask, model: nn.Module, deadline: Deadline) -> list[nn.Module]:
        """The rDLMs: copies of ``model`` (re-initialised when ``from_scratch``), each fine-tuned on its
        own seeded ``reduced_share`` of the fit rows."""
        config, reduced = self.config, []
        rng = np.random.default_rng(task.seed + 19)
        size = max(1, round(config.reduced_share * len(task.fit_indices)))
        for index in range(config.reduced_models):
            copy_ = copy.deepcopy(model)
            if config.from_scratch:
                for module in copy_.modules():
                    if hasattr(module, "reset_parameters"):
                        module.reset_parameters()
            rows = np.sort(rng.choice(task.fit_indices, size=size, replace=False))
            fit(copy_, task.loader(rows, config.train.batch_size, shuffle=True, seed_offset=31 + index),
                task.schedule(config.train, epochs=config.reduced_epochs, patience=None),
                description=f"{self.name} reduced model {index + 1}", deadline=deadline)
            reduced.append(copy_.eval())
        return reduced

    @staticmethod
    def _failing_rows(task: RepairTask) -> np.ndarray:
        """The fit rows the original model misclassifies (``D_fail`` and wrong training rows)."""
        fit_rows = task.fit_indices
        return fit_rows[task.original_logits().argmax(1).numpy()[fit_rows] != task.repair.y[fit_rows]]

    @staticmethod
    def _validate(task: RepairTask, model: nn.Module) -> float:
        return task.validate(model)[0]


@register_repairer("apricot", "baseline: move the weights toward reduced models that classify each failure right "
                              "(Zhang and Chan)")
def apricot(settings: RepairSettings) -> Apricot:
    return Apricot(ApricotConfig(train=settings.train))
