"""The 15 natural corruptions of CIFAR-10-C (Hendrycks and Dietterich, ICLR 2019), reimplemented.

Batched and seeded: the same images, severity and seed give the same output. No ImageMagick or
OpenCV: motion blur (and the snow layer's blur) follow ImageMagick's kernel, the rest uses numpy,
scipy and Pillow. Frost uses a procedural texture unless texture images are given.

Example:
    >>> corrupted = corrupt(images, "fog", severity=3, seed=0)   # images (N, 32, 32, 3) uint8
    >>> for (name, severity), out in corrupt_many(images, [("fog", 1), ("snow", 2)]): ...
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from functools import partial

import numpy as np

from ...errors import ArchRepairError
from .constants import (
    CIFAR,
    DETERMINISTIC,
    NAMES,
    ORDER,
    PRESETS,
    TINY_IMAGENET,
    preset_for,
)
from .registry import get_corruption, list_corruptions, register_corruption
from .textures import texture_bank

CHUNK = 1000  # images per call of a corruption function; part of what a seed means, so keep it fixed
VERSION = 2  # raise when an output for a given seed changes, so that cached corrupted sets are remade


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0,
            frost_textures: list[np.ndarray] | None = None, preset: str | None = None) -> np.ndarray:
    """Corrupt ``images`` ``(N, H, W, 3)`` uint8 with corruption ``name`` at ``severity`` (1..5).

    ``preset``: the constants, ``cifar`` (CIFAR-10-C) or ``tiny-imagenet`` (Tiny-ImageNet-C);
    default by image size (:func:`preset_for`). Returns uint8 of the same shape; like the original
    generator, float results are truncated (not rounded) to integers.
    """
    entry = get_corruption(name)
    if not 1 <= severity <= 5:
        raise ArchRepairError(f"severity must be 1..5, got {severity}")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ArchRepairError(f"corruptions take uint8 RGB images (N, H, W, 3), got {images.dtype} {images.shape}")
    preset = preset or preset_for(images.shape[1])
    if preset not in PRESETS:
        raise ArchRepairError(f"unknown corruption preset {preset!r}; choose one of {', '.join(PRESETS)}")
    rng = np.random.default_rng([seed, list_corruptions().index(name), severity])
    constant = entry.constants[preset][severity - 1]
    function = entry.function
    if name == "frost":
        textures = frost_textures or texture_bank(rng, size=max(128, 4 * images.shape[1]))
        function = partial(function, textures=textures)
    out = np.empty(images.shape, dtype=np.uint8)
    for start in range(0, len(images), CHUNK):  # chunks stay in cache: about 1.5x faster than one batch
        part = function(images[start : start + CHUNK], constant, rng)
        out[start : start + CHUNK] = np.clip(part, 0, 255).astype(np.uint8)
    return out


__all__ = ["CIFAR", "DETERMINISTIC", "NAMES", "ORDER", "PRESETS", "TINY_IMAGENET", "VERSION", "corrupt",
           "get_corruption", "list_corruptions", "register_corruption",
           "corrupt_many", "preset_for"]


def corrupt_many(images: np.ndarray, jobs: list[tuple[str, int]], seed: int = 0,
                 frost_textures: list[np.ndarray] | None = None, preset: str | None = None,
                 workers: int | None = None) -> Iterator[tuple[tuple[str, int], np.ndarray]]:
    """:func:`corrupt` for every ``(name, severity)`` in ``jobs``, in ``workers`` processes (default:
    one per CPU core, at most one per job); yields ``((name, severity), images)`` in job order.
    Each job's output is the same as a single :func:`corrupt` call's, whatever the worker count."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    if workers == 1:
        for name, severity in jobs:
            yield (name, severity), corrupt(images, name, severity, seed, frost_textures, preset)
        return
    import signal
    import threading

    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch's thread pools
    # The workers start with Ctrl-C ignored (a terminal sends it to the whole process group, and a worker
    # still importing would print a traceback; an ignored signal stays ignored across exec, and Python
    # keeps it so); the parent handles it and stops them.
    main = threading.current_thread() is threading.main_thread()
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        pool = context.Pool(workers, initializer=_one_thread)
    finally:
        if main:
            signal.signal(signal.SIGINT, handler)
    try:
        arguments = [(images, name, severity, seed, frost_textures, preset) for name, severity in jobs]
        for job, result in zip(jobs, pool.imap(_corrupt_job, arguments)):
            yield job, result
        pool.close()
    finally:
        pool.terminate()  # an interruption (Ctrl-C, SIGTERM) stops the workers now, queued jobs and all
        pool.join()


def _corrupt_job(arguments: tuple) -> np.ndarray:
    return corrupt(*arguments)


def _one_thread() -> None:
    """Worker set-up: one thread per process, so that the workers do not contend for the cores; Ctrl-C
    is the parent's to handle (it stops the workers)."""
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
