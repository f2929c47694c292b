"""SENSEI (Gao, Saha, Prasad, Roychoudhury; ICSE 2020): training on each example's worst variant
found by a genetic search that persists across epochs.

Every fit row keeps a small population of transformation vectors (rotation, translation, shear; with
``filters`` also zoom, brightness and contrast), first the identity and ``queue + children - 1``
random ones. In every batch each row's candidates (its kept ``queue`` and ``children`` new ones: a
mutation of 2-4 parameters by one step with probability ``mutate``, else a crossover of the best
with the most different) are rendered (batched affine warps in ``[0, 1]`` space, before
normalisation), scored by their loss with the model in eval mode, and the model trains on the
worst; if that variant's (true, predicted) pair has already been chosen ``pair_limit`` times, the
second worst. The ``queue`` worst stay for the next epoch. ``selective`` (SENSEI-SA): a row whose
chosen loss fell below ``threshold`` in the previous epoch skips the search and trains as it is.

Defaults are the official ``config.py``'s (``-q 10``: queue 4, 6 children; rotation ±30° step 6,
translation ±3 px step 1, shear ±0.1 step 0.02; filters off). An epoch costs ``queue + children``
scoring passes plus the training pass per row (``details["image_passes"]``).

Example:
    >>> result = get_repairer("sensei").repair(task)   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ...budget import Deadline
from ...train import TrainConfig, fit
from ..augment import affine, denormalised, normalised
from ..base import Candidate, ConfiguredRepairer, image_passes
from ..block_split import eval_mode
from ..estimate import batch_step_seconds, pass_seconds
from ..registry import RepairSettings, default_train, register_repairer
from ..task import RepairTask

#: name: (bound, step, identity); angles in degrees, shifts in pixels of a 32-px image (scaled with
#: the image), zoom and contrast as factors, brightness in [0, 1] units.
GEOMETRIC = {"rotation": (30.0, 6.0, 0.0), "translate_x": (3.0, 1.0, 0.0), "translate_y": (3.0, 1.0, 0.0),
             "shear": (0.1, 0.02, 0.0)}
FILTERS = {"zoom": (0.1, 0.05, 1.0), "brightness": (32 / 255, 4 / 255, 0.0), "contrast": (0.2, 0.05, 1.0)}


@dataclass
class SenseiConfig:
    queue: int = 4
    children: int = 6
    mutate: float = 0.6
    filters: bool = False
    selective: bool = False
    threshold: float = 1e-3
    pair_limit: int = 1000
    train: TrainConfig = field(default_factory=default_train)

    @property
    def space(self) -> dict[str, tuple[float, float, float]]:
        return GEOMETRIC | (FILTERS if self.filters else {})


def render(images: torch.Tensor, vectors: torch.Tensor, names: list[str]) -> torch.Tensor:
    """``images`` ``(B, C, H, W)`` in ``[0, 1]`` through transformation ``vectors`` ``(B, P)`` (columns
    ``names``): rotation, shear, zoom and translation in one affine warp, then brightness and contrast."""
    value = {name: vectors[:, index] for index, name in enumerate(names)}
    count = len(images)
    angle = torch.deg2rad(value.get("rotation", torch.zeros(count)))
    shear, zoom = value.get("shear", torch.zeros(count)), value.get("zoom", torch.ones(count))
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) / zoom, (-torch.sin(angle) + shear) / zoom
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) / zoom, torch.cos(angle) / zoom
    theta[:, 0, 2] = 2 * value.get("translate_x", torch.zeros(count)) / 32  # pixels of a 32-px image
    theta[:, 1, 2] = 2 * value.get("translate_y", torch.zeros(count)) / 32
    out = affine(images, theta)
    if "contrast" in value:
        mean = out.mean((1, 2, 3), keepdim=True)
        out = (out - mean) * value["contrast"].view(-1, 1, 1, 1).to(out) + mean
    if "brightness" in value:
        out = out + value["brightness"].view(-1, 1, 1, 1).to(out)
    return out.clamp(0, 1)


class Population:
    """Each row's kept transformation vectors ``(queue, P)``, made on first use (the identity and
    random vectors), and the children of a batch."""

    def __init__(self, config: SenseiConfig, rng: np.random.Generator) -> None:
        self.config, self.rng = config, rng
        self.names = list(config.space)
        self.bounds = np.array([config.space[n][0] for n in self.names])
        self.steps = np.array([config.space[n][1] for n in self.names])
        self.identity = np.array([config.space[n][2] for n in self.names])
        self.kept: dict[int, np.ndarray] = {}

    def candidates(self, row: int) -> np.ndarray:
        """``(queue + children, P)``: a new row's identity and random vectors, else its kept ones and children."""
        size = self.config.queue + self.config.children
        if row not in self.kept:
            steps = self.rng.integers(-np.floor(self.bounds / self.steps), np.floor(self.bounds / self.steps) + 1,
                                      size=(size - 1, len(self.names)))
            return np.vstack([self.identity, self.identity + steps * self.steps])
        kept = self.kept[row]
        return np.vstack([kept] + [self._child(kept) for _ in range(self.config.children)])

    def keep(self, row: int, candidates: np.ndarray, losses: np.ndarray) -> None:
        self.kept[row] = candidates[np.argsort(-losses, kind="stable")[:self.config.queue]]

    def _child(self, kept: np.ndarray) -> np.ndarray:
        if self.rng.random() < self.config.mutate or len(kept) < 2:
            child = kept[self.rng.integers(len(kept))].copy()
            changed = self.rng.choice(len(self.names), size=min(len(self.names), self.rng.integers(2, 5)), replace=False)
            child[changed] += self.rng.choice([-1, 1], size=len(changed)) * self.steps[changed]
        else:  # the best (first) crossed with the most different
            best = kept[0]
            other = kept[np.argmax(np.abs((kept - best) / self.steps).sum(1))]
            child = np.where(self.rng.random(len(best)) < 0.5, best, other)
        return np.clip(child, self.identity - self.bounds, self.identity + self.bounds)


class WorstVariants:
    """A training loader's batches with each image replaced by its worst variant (see the module docstring)."""

    def __init__(self, loader, model: nn.Module, population: Population, task: RepairTask, config: SenseiConfig) -> None:
        self.loader, self.model, self.population, self.task, self.config = loader, model, population, task, config
        self.device = loader.device
        self.pairs = np.zeros((task.record.num_classes,) * 2, dtype=np.int64)
        self.robust: set[int] = set()
        self.scored = 0

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __iter__(self):
        mean, std = self.task.record.mean, self.task.record.std
        for images, labels, rows in self.loader:
            plain = denormalised(images, mean, std).clamp(0, 1).cpu()
            searched = [i for i, row in enumerate(rows.tolist()) if not (self.config.selective and row in self.robust)]
            chosen = plain.clone()
            if searched:
                chosen[searched] = self._worst(plain[searched], labels[searched].cpu(), rows[searched].tolist())
            yield normalised(chosen.to(images.device), mean, std), labels, rows

    def _worst(self, images: torch.Tensor, labels: torch.Tensor, rows: list[int]) -> torch.Tensor:
        candidates = [self.population.candidates(row) for row in rows]
        size = len(candidates[0])
        vectors = torch.as_tensor(np.concatenate(candidates), dtype=torch.float32)
        variants = render(images.repeat_interleave(size, 0), vectors, self.population.names)
        mean, std = self.task.record.mean, self.task.record.std
        with eval_mode(self.model), torch.no_grad():
            logits = self.model(normalised(variants, mean, std).to(self.device)).float().cpu()
        repeated = labels.repeat_interleave(size)
        losses = nn.functional.cross_entropy(logits, repeated, reduction="none").view(len(rows), size).numpy()
        predicted = logits.argmax(1).view(len(rows), size).numpy()
        self.scored += len(variants)
        picks = []
        for index, row in enumerate(rows):
            order, true = np.argsort(-losses[index], kind="stable"), int(labels[index])
            pick = order[0]
            if self.pairs[true, predicted[index, pick]] >= self.config.pair_limit and size > 1:
                pick = order[1]
            self.pairs[true, predicted[index, pick]] += 1
            self.population.keep(row, candidates[index], losses[index])
            if losses[index, pick] < self.config.threshold:
                self.robust.add(row)
            else:
                self.robust.discard(row)
            picks.append(index * size + pick)
        return variants[picks]


class Sensei(ConfiguredRepairer):
    """Train the whole network on each example's worst variant; see the module docstring."""

    config_type = SenseiConfig
    name = "sensei"

    def estimate(self, task: RepairTask) -> dict[str, float]:
        """Timed batches (the search, rendering and scoring included) and SGD steps, scaled to the
        epochs, and a validation pass per epoch."""
        model = copy.deepcopy(task.model).requires_grad_(True).train()
        loader = task.loader(task.fit_indices, self.config.train.batch_size, shuffle=True, with_rows=True)
        variants = WorstVariants(loader, model, Population(self.config, np.random.default_rng(0)), task, self.config)
        per_epoch = len(loader) * batch_step_seconds(model, variants, task.amp) + pass_seconds(model, task, task.val_indices)
        return {"train": self.config.train.epochs * per_epoch}

    def train(self, task: RepairTask, deadline: Deadline) -> Candidate:
        started, config = time.perf_counter(), self.config
        model = copy.deepcopy(task.model).requires_grad_(True)
        population = Population(config, np.random.default_rng(task.seed + 53))
        loader = task.loader(task.fit_indices, config.train.batch_size, shuffle=True, seed_offset=59, with_rows=True)
        variants = WorstVariants(loader, model, population, task, config)
        history = fit(model, variants, task.schedule(config.train), val_loader=task.loader(task.val_indices),
                      description=self.name, deadline=deadline,
                      on_epoch=lambda e: self.log(f"{self.name} epoch {e.epoch + 1}: val {e.val_accuracy:.4f}"))
        details = {"history": [asdict(e) for e in history.history], "stop_reason": history.stop_reason,
                   "space": population.names, "selective": config.selective,
                   "image_passes": image_passes(task, variants.scored + history.epochs_run * len(loader.indices)),
                   "prefix_cache": "off: the whole network trains"}
        return Candidate(model, details, {"train": time.perf_counter() - started})


@register_repairer("sensei", "baseline: train on each example's worst rotation/translation/shear, found by a genetic "
                             "search kept across epochs (Gao et al.)")
def sensei(settings: RepairSettings) -> Sensei:
    return Sensei(SenseiConfig(train=settings.train))
