"""Seeded, stratified index splits."""

from __future__ import annotations

import hashlib
import math

import numpy as np


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(len(labels))`` into (rest, part) with ``part`` about ``fraction`` of the examples.

    Stratified by label when every class has at least two members and both parts can hold one of
    each (else a plain seeded split); both outputs are sorted int64 index arrays.
    """
    from sklearn.model_selection import train_test_split  # here: importing scikit-learn costs a second at start-up

    indices = np.arange(len(labels))
    if fraction <= 0:
        return indices, indices[:0]
    counts = np.bincount(labels)
    classes, part = int((counts > 0).sum()), math.ceil(fraction * len(labels))
    stratified = counts[counts > 0].min() >= 2 and classes <= part <= len(labels) - classes
    stratify = labels if stratified else None
    rest, part = train_test_split(indices, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(rest), np.sort(part)


def stratified_sample(rows: np.ndarray, labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """At most ``size`` of ``rows`` (sorted), each class in proportion to its share (seeded)."""
    if len(rows) <= size:
        return np.sort(rows)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = np.floor(counts * size / len(rows)).astype(int)
    quotas[np.argsort(-(counts * size / len(rows) - quotas))[:size - quotas.sum()]] += 1
    chosen = [rng.choice(rows[labels == c], size=q, replace=False) for c, q in zip(classes, quotas)]
    return np.sort(np.concatenate(chosen))


def indices_digest(indices: np.ndarray) -> str:
    """sha256 (hex) of sorted int64 indices: recorded beside a split so that a split recomputed
    later (another library version, another thread count) is checked to be the same one."""
    return hashlib.sha256(np.sort(np.asarray(indices, np.int64)).tobytes()).hexdigest()
