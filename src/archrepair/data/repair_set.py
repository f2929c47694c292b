"""``D_repair = D_fail ∪ D_train`` as arrays: the failures plus a seeded sample of training examples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrays import ImageData
from .scenario import FailureSplit


@dataclass
class RepairSet:
    """Images ``(N, H, W, C)`` uint8 and labels ``(N,)``; the first ``num_failures`` rows are ``D_fail``."""

    x: np.ndarray
    y: np.ndarray
    num_failures: int
    train_indices: np.ndarray


def repair_set(data: ImageData, split: FailureSplit, train_examples: int | None = 1000, seed: int = 0) -> RepairSet:
    """``D_fail`` (test rows of ``split``) followed by ``train_examples`` training rows chosen at random
    (seeded; ``None`` takes the whole training split)."""
    count = len(data.y_train) if train_examples is None else min(train_examples, len(data.y_train))
    chosen = np.sort(np.random.default_rng(seed).choice(len(data.y_train), size=count, replace=False))
    fail = np.asarray(split.fail_indices, dtype=np.int64)
    return RepairSet(
        x=np.concatenate([data.x_test[fail], data.x_train[chosen]]),
        y=np.concatenate([data.y_test[fail], data.y_train[chosen]]),
        num_failures=len(fail),
        train_indices=chosen,
    )
