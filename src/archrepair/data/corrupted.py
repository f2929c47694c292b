"""Corrupted test sets: generated with :mod:`.corruptions` (cached) or read from official folders.

A corrupted data set keeps the clean training split and replaces the test split by the corrupted
test images, so ``D_fail``, the evaluation split and every repair work on it unchanged.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import ArchRepairError
from .arrays import ImageData
from .corruptions import NAMES, corrupt
from .sources import cache_dir


def parse_corruptions(text: str) -> list[str]:
    """``all`` or a comma-separated list of corruption names."""
    names = NAMES if text == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ArchRepairError(f"unknown corruption(s) {unknown}; choose from: all, {', '.join(NAMES)}")
    return list(names)


def corrupted_test(data: ImageData, name: str, severity: int, seed: int = 0, source_dir: str | None = None,
                   frost_textures: list[np.ndarray] | None = None) -> ImageData:
    """``data`` with its test split replaced by corruption ``name`` at ``severity``.

    With ``source_dir`` (an official CIFAR-10-C folder: ``<name>.npy`` severity-major and
    ``labels.npy``) the images are read from there and must line up with ``data``'s test labels;
    otherwise they are generated (seeded) and cached under the data cache.
    """
    count = len(data.y_test)
    if source_dir is not None:
        images = _read_official(Path(source_dir), name, severity, count, data.y_test)
    else:
        key = hashlib.sha256(f"{data.fingerprint}|{name}|{severity}|{seed}|{bool(frost_textures)}".encode()).hexdigest()[:24]
        cached = cache_dir() / "corrupted" / f"{key}.npy"
        if cached.exists() and not frost_textures:
            images = np.load(cached)
        else:
            images = corrupt(data.x_test, name, severity, seed, frost_textures)
            if not frost_textures:
                cached.parent.mkdir(parents=True, exist_ok=True)
                temporary = cached.with_name(f".{cached.name}.{os.getpid()}.tmp.npy")
                np.save(temporary, images)
                os.replace(temporary, cached)
    spec = f"{data.spec}#{name}-{severity}"
    return replace(data, spec=spec, x_test=images, _fingerprint=None)


def _read_official(folder: Path, name: str, severity: int, count: int, labels: np.ndarray) -> np.ndarray:
    path = folder / f"{name}.npy"
    if not path.exists():
        raise ArchRepairError(f"{str(path)!r} does not exist; a CIFAR-10-C folder holds <corruption>.npy and labels.npy")
    array = np.load(path, mmap_mode="r")
    if array.shape[0] != 5 * count:
        raise ArchRepairError(f"{str(path)!r} has {array.shape[0]} rows; expected 5 x {count} (severity-major)")
    official_labels = np.load(folder / "labels.npy")[:count]
    if not np.array_equal(official_labels, labels):
        raise ArchRepairError(f"labels in {str(folder)!r} do not match the test split of the data; use the matching data set")
    return np.ascontiguousarray(array[(severity - 1) * count : severity * count])


def write_cifar_c(data: ImageData, folder: Path, names: list[str], severities: list[int], seed: int = 0,
                  frost_textures=None, progress: bool = True) -> list[Path]:
    """Write ``<name>.npy`` ``(len(severities) * N, H, W, 3)`` uint8, severity-major, and ``labels.npy``."""
    from tqdm import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    bar = tqdm(total=len(names) * len(severities), desc="corrupting", unit="set", disable=None if progress else True)
    for name in names:
        parts = []
        for severity in severities:
            parts.append(corrupt(data.x_test, name, severity, seed, frost_textures))
            bar.update()
        target = folder / f"{name}.npy"
        temporary = folder / f".{name}.{os.getpid()}.tmp.npy"
        np.save(temporary, np.concatenate(parts))
        os.replace(temporary, target)
        written.append(target)
    np.save(folder / "labels.npy", np.tile(data.y_test, len(severities)))
    bar.close()
    return written


def write_imagefolder_c(data: ImageData, folder: Path, names: list[str], severities: list[int], seed: int = 0,
                        frost_textures=None, progress: bool = True) -> list[Path]:
    """Tiny-ImageNet-C layout: ``<folder>/<name>/<severity>/<class>/<index>.png``."""
    from PIL import Image
    from tqdm import tqdm

    written = []
    bar = tqdm(total=len(names) * len(severities), desc="corrupting", unit="set", disable=None if progress else True)
    for name in names:
        for severity in severities:
            images = corrupt(data.x_test, name, severity, seed, frost_textures)
            root = folder / name / str(severity)
            for index, (image, label) in enumerate(zip(images, data.y_test)):
                target = root / data.class_names[label]
                target.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(target / f"{index:06d}.png")
            written.append(root)
            bar.update()
    bar.close()
    return written
