"""What every repair method is given: the model, its data, ``D_fail``, ``D_repair`` and its splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..checkpoint import ModelRecord
from ..data import BatchLoader, FailureSplit, ImageData, stratified_split
from ..data.repair_set import RepairSet, repair_set


@dataclass
class RepairTask:
    """One repair problem. ``repair`` is ``D_repair = D_fail ∪ D_train sample``; ``fit_indices``
    (rows of ``repair`` used for training: all of ``D_fail`` and most of the training sample) and
    ``val_indices`` (training-sample rows held out for early stopping and for choosing between the
    original and the repaired block; never failures, so that the choice measures how well a model
    generalises rather than how many of the failures it has memorised) partition it;
    ``search_train`` and ``search_val`` halve ``fit_indices`` for the architecture search. Batches
    land on ``device``."""

    model: nn.Module
    record: ModelRecord
    data: ImageData
    split: FailureSplit
    repair: RepairSet
    fit_indices: np.ndarray
    val_indices: np.ndarray
    search_train: np.ndarray
    search_val: np.ndarray
    seed: int
    device: torch.device
    channels_last: bool = False

    def loader(self, indices: np.ndarray, batch_size: int = 256, shuffle: bool = False, augment: str = "none",
               seed_offset: int = 0) -> BatchLoader:
        return BatchLoader(self.repair.x, self.repair.y, self.record.mean, self.record.std, indices=indices,
                           batch_size=batch_size, shuffle=shuffle, augment=augment, seed=self.seed + seed_offset,
                           device=self.device, channels_last=self.channels_last)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the model's input."""
        height, width, channels = self.record.input_shape
        return channels, height, width

    def example(self, count: int = 8) -> torch.Tensor:
        """A normalised batch of the first ``count`` repair examples, on the task's device."""
        return next(iter(self.loader(np.arange(min(count, len(self.repair.y))), batch_size=count)))[0]


def make_task(model: nn.Module, record: ModelRecord, data: ImageData, split: FailureSplit,
              train_examples: int | None = 5000, val_fraction: float = 0.2, seed: int = 0,
              device: torch.device | str = "cpu", channels_last: bool = False) -> RepairTask:
    """Build ``D_repair`` from ``split`` and ``train_examples`` training examples; hold out
    ``val_fraction`` of the training examples (stratified by label, seeded) for validation; halve
    the rest together with ``D_fail`` for the search."""
    repair = repair_set(data, split, train_examples, seed)
    train_rows = np.arange(repair.num_failures, len(repair.y))
    fit_rows, val_rows = stratified_split(repair.y[train_rows], val_fraction, seed)
    fit = np.concatenate([np.arange(repair.num_failures), train_rows[fit_rows]])
    val = train_rows[val_rows]
    half_a, half_b = stratified_split(repair.y[fit], 0.5, seed + 1)
    return RepairTask(model, record, data, split, repair, fit, val, fit[half_a], fit[half_b], seed,
                      torch.device(device), channels_last)
