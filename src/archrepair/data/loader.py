"""Batches of normalised image tensors from uint8 arrays, with batched crop-and-flip augmentation.

Augmentation runs on whole batches with tensor indexing (on the target device), which is much
faster on a 2-core CPU than per-image PIL transforms and needs no worker processes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np
import torch

AUGMENTATIONS = ("none", "crop", "crop-flip")


class FeatureRows(Protocol):
    """Precomputed inputs, one row per example: ``take(rows)`` gives ``(len(rows), D)`` float32."""

    def take(self, rows: torch.Tensor) -> torch.Tensor: ...


class BatchLoader:
    """Iterate ``(images, labels)`` over ``x[indices]``.

    Args:
        x: images ``(N, H, W, C)`` uint8.
        y: labels ``(N,)`` int64.
        mean, std: per-channel normalisation in [0, 1] units (length C).
        indices: which rows to use (default all); order kept unless ``shuffle``.
        batch_size: examples per batch.
        shuffle: a new seeded permutation each epoch (see :meth:`set_epoch`).
        augment: ``none``, ``crop`` (zero-pad 4, random crop) or ``crop-flip`` (plus horizontal flip).
        seed: seeds shuffling and augmentation; epoch ``e`` uses ``seed`` and ``e`` together, so a
            resumed run sees the same batches as an uninterrupted one.
        device: where batches are placed.
        channels_last: return images in channels-last memory format.
        features: rows of precomputed model inputs (e.g. a block's cached inputs, ``(N, D)``
            float32 indexed like ``x``) to yield instead of images; then ``augment`` must be
            ``none``. The order, batches and failure draws are the same as with images.
        with_rows: also yield each batch's row indices (into ``x``), for per-row targets such as
            stored logits.

    Yields ``images`` float32 ``(B, C, H, W)`` normalised, and ``labels`` int64 ``(B,)`` (and with
    ``with_rows`` the rows, int64 ``(B,)``, on the CPU).
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        mean: Sequence[float],
        std: Sequence[float],
        indices: np.ndarray | None = None,
        batch_size: int = 128,
        shuffle: bool = False,
        augment: str = "none",
        seed: int = 0,
        device: torch.device | str = "cpu",
        channels_last: bool = False,
        padding: int = 4,
        features: FeatureRows | None = None,
        with_rows: bool = False,
    ) -> None:
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
        if features is not None and augment != "none":
            raise ValueError("precomputed features cannot be augmented; use augment='none'")
        self.x = torch.from_numpy(np.ascontiguousarray(x))
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64))
        self.indices = torch.arange(len(x)) if indices is None else torch.as_tensor(indices, dtype=torch.long)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.seed = seed
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.padding = padding
        self.features = features
        self.with_rows = with_rows
        self.epoch = 0
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation and augmentation draws of ``epoch`` (as DistributedSampler does)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.indices) + self.batch_size - 1) // self.batch_size

    @property
    def num_examples(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = self.indices[torch.randperm(len(self.indices), generator=generator)] if self.shuffle else self.indices
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            if self.features is not None:
                inputs = self.features.take(rows).to(self.device, non_blocking=True)
            else:
                inputs = self.x[rows].to(self.device, non_blocking=True)
                if self.augment != "none":
                    inputs = self._augment(inputs, generator)
                inputs = self._normalise(inputs)
            labels = self.y[rows].to(self.device, non_blocking=True)
            yield (inputs, labels, rows) if self.with_rows else (inputs, labels)

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        images = images.permute(0, 3, 1, 2).float().div_(255.0)
        images = (images - self.mean) / self.std
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        # clone, not contiguous(): a one-channel batch permuted from NHWC counts as contiguous but keeps
        # channels-last strides, which send convolutions to channels-last kernels (and oneDNN's strided
        # 1x1 backward corrupts memory there in torch 2.14 on CPU)
        return images.clone(memory_format=memory_format)

    def _augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random crop after zero padding, and random horizontal flip; ``(B, H, W, C)`` uint8."""
        count, height, width, _ = images.shape
        pad = self.padding
        padded = torch.nn.functional.pad(images, (0, 0, pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (count, 1), generator=generator).to(self.device)
        dx = torch.randint(0, 2 * pad + 1, (count, 1), generator=generator).to(self.device)
        rows = dy + torch.arange(height, device=self.device)
        cols = dx + torch.arange(width, device=self.device)
        if self.augment == "crop-flip":
            flip = (torch.rand(count, 1, generator=generator) < 0.5).to(self.device)
            cols = torch.where(flip, cols.flip(1), cols)
        batch = torch.arange(count, device=self.device)[:, None, None]
        return padded[batch, rows[:, :, None], cols[:, None, :]]
