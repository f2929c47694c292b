"""``D_repair = D_fail ∪ D_train`` as arrays: the failures plus a seeded sample of training examples,
part of which is set aside for validation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .arrays import ImageData
from .scenario import FailureSplit
from .splits import stratified_split


@dataclass
class RepairSet:
    """Images ``(N, H, W, C)`` uint8 and labels ``(N,)``; the first ``num_failures`` rows are
    ``D_fail``, the next are the training examples ``train_indices`` (indices into the training
    split, in row order), and any rows after those are a field set's fit images that the original
    classifies correctly (``field_fit_indices`` into the field set, at rows ``field_fit_rows``: retain
    rows that every method but the "train more" baselines fits), shifted copies of validation rows or
    a field set's validation rows, ``field_val_indices`` (at rows ``field_val_rows``; see ``make_task``). ``val_rows`` (rows of ``x``, never
    failures) are held out for validation.
    ``spare_pool``: training indices of the validation pool that no row took (sorted; empty without a
    pool), which the keep rule decides on (:mod:`archrepair._repair.keep`)."""

    x: np.ndarray
    y: np.ndarray
    num_failures: int
    train_indices: np.ndarray
    val_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    spare_pool: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    field_val_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    field_fit_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    field_fit_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    field_val_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def repair_set(data: ImageData, split: FailureSplit, train_examples: int | None = 1000, seed: int = 0,
               val_fraction: float = 0.0, validation_pool: np.ndarray | None = None) -> RepairSet:
    """``D_fail`` (test rows of ``split``) followed by ``train_examples`` training rows chosen at random
    (seeded; ``None`` takes the whole training split), of which ``val_fraction`` become ``val_rows``.

    With ``validation_pool`` (training indices the model never trained on, such as the base
    model's own held-out split) the validation rows are drawn from it and the others from the
    rest, so that validation measures generalisation; otherwise they are a stratified share of
    the sample.
    """
    fail = np.asarray(split.fail_indices, dtype=np.int64)
    rng = np.random.default_rng(seed)
    everything = np.arange(len(data.y_train))
    if validation_pool is None or len(validation_pool) == 0 or val_fraction <= 0:
        count = len(everything) if train_examples is None else min(train_examples, len(everything))
        chosen = np.sort(rng.choice(everything, size=count, replace=False))
        rest, val = stratified_split(data.y_train[chosen], val_fraction, seed)
        val_rows = len(fail) + val
    else:
        pool = np.asarray(validation_pool, dtype=np.int64)
        trainable = np.setdiff1d(everything, pool)
        total = len(trainable) + len(pool) if train_examples is None else train_examples
        val_count = min(len(pool), round(val_fraction * total))
        fit_count = min(len(trainable), total - val_count)
        fit_part = np.sort(rng.choice(trainable, size=fit_count, replace=False))
        val_part = np.sort(rng.choice(pool, size=val_count, replace=False))
        chosen = np.concatenate([fit_part, val_part])
        val_rows = len(fail) + fit_count + np.arange(val_count)
    spare = np.zeros(0, dtype=np.int64) if validation_pool is None else np.setdiff1d(validation_pool, chosen)
    return RepairSet(
        x=np.concatenate([data.x_test[fail], data.x_train[chosen]]),
        y=np.concatenate([data.y_test[fail], data.y_train[chosen]]),
        num_failures=len(fail),
        train_indices=chosen,
        val_rows=np.asarray(val_rows, dtype=np.int64),
        spare_pool=np.asarray(spare, dtype=np.int64),
    )
