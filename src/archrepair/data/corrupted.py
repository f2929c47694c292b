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
from .corruptions import NAMES, VERSION, corrupt, corrupt_many
from .sources import IMAGE_SUFFIXES, cache_dir, write_cache


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

    With ``source_dir`` the images are read from an official folder instead: a CIFAR-10-C folder
    (``<name>.npy`` severity-major and ``labels.npy``, lined up with ``data``'s test labels) or a
    Tiny-ImageNet-C tree (``<name>/<severity>/<class>/<image>``, which then replaces the test
    labels too; its classes must be among ``data``'s). Otherwise they are generated (seeded) and
    cached under the data cache.
    """
    count = len(data.y_test)
    if source_dir is not None and (Path(source_dir) / name).is_dir():
        images, labels = _read_tree(Path(source_dir) / name / str(severity), data)
        return replace(data, spec=f"{data.spec}#{name}-{severity}", x_test=images, y_test=labels, _fingerprint=None)
    if source_dir is not None:
        images = _read_official(Path(source_dir), name, severity, count, data.y_test)
    else:
        key = hashlib.sha256(f"{data.fingerprint}|{name}|{severity}|{seed}|{bool(frost_textures)}|v{VERSION}"
                             .encode()).hexdigest()[:24]
        cached = cache_dir() / "corrupted" / f"{key}.npy"
        if cached.exists() and not frost_textures:
            images = np.load(cached)
        else:
            images = corrupt(data.x_test, name, severity, seed, frost_textures)
            if not frost_textures:
                write_cache(cached, lambda temporary: np.save(temporary, images))
    spec = f"{data.spec}#{name}-{severity}"
    return replace(data, spec=spec, x_test=images, _fingerprint=None)


def _read_official(folder: Path, name: str, severity: int, count: int, labels: np.ndarray) -> np.ndarray:
    path = folder / f"{name}.npy"
    if not path.exists():
        raise ArchRepairError(f"{str(path)!r} does not exist; a CIFAR-10-C folder holds <corruption>.npy and labels.npy")
    labels_path = folder / "labels.npy"
    if not labels_path.exists():
        raise ArchRepairError(f"{str(labels_path)!r} does not exist; a CIFAR-10-C folder holds <corruption>.npy and labels.npy")
    array, official_labels = _read_array(path), _read_array(labels_path)[:count]
    if array.ndim != 4 or array.shape[0] != 5 * count or array.dtype != np.uint8:
        raise ArchRepairError(f"{str(path)!r} holds {array.dtype} {array.shape}; expected uint8 (5 x {count}, H, W, C), "
                              "severity-major")
    if not np.array_equal(official_labels, labels):
        raise ArchRepairError(f"labels in {str(folder)!r} do not match the test split of the data; use the matching data set")
    return np.ascontiguousarray(array[(severity - 1) * count : severity * count])


def _read_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ArchRepairError(f"{str(path)!r} cannot be read as a .npy array ({error}); is it complete?") from None


def _read_tree(folder: Path, data: ImageData) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, H, W, C)`` uint8 and labels of a Tiny-ImageNet-C severity folder ``<class>/<image>``,
    sorted by class and file name; class folder names are mapped to ``data.class_names``."""
    from PIL import Image

    if not folder.is_dir():
        raise ArchRepairError(f"{str(folder)!r} does not exist; a Tiny-ImageNet-C tree holds <corruption>/<severity>/<class>/")
    index = {name: i for i, name in enumerate(data.class_names)}
    unknown = sorted(d.name for d in folder.iterdir() if d.is_dir() and d.name not in index)
    if unknown:
        raise ArchRepairError(f"{str(folder)!r} has classes the data does not know: {unknown[:5]}; use the matching data set")
    files = sorted(f for f in folder.glob("*/*") if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ArchRepairError(f"{str(folder)!r} holds no images")
    mode = "L" if data.x_test.shape[-1] == 1 else "RGB"
    images = np.stack([np.asarray(Image.open(f).convert(mode)) for f in files])
    images = images if images.ndim == 4 else images[..., None]
    if images.shape[1:] != data.x_test.shape[1:]:
        raise ArchRepairError(f"images in {str(folder)!r} are {images.shape[1:]}, the data's are {data.x_test.shape[1:]}")
    return images, np.array([index[f.parent.name] for f in files], dtype=np.int64)


def write_cifar_c(data: ImageData, folder: Path, names: list[str], severities: list[int], seed: int = 0,
                  frost_textures=None, progress: bool = True, preset: str | None = None,
                  workers: int | None = None) -> list[Path]:
    """Write ``<name>.npy`` ``(len(severities) * N, H, W, 3)`` uint8, severity-major in increasing
    severity, and ``labels.npy``;
    corruptions run in ``workers`` processes (default: one per core)."""
    folder.mkdir(parents=True, exist_ok=True)
    severities = sorted(severities)
    written, parts = [], {}
    jobs = [(name, severity) for name in names for severity in severities]
    with _progress(len(jobs), progress) as bar:
        for (name, severity), images in corrupt_many(data.x_test, jobs, seed, frost_textures, preset, workers):
            parts[severity] = images
            bar.update()
            if len(parts) == len(severities):
                target = folder / f"{name}.npy"
                temporary = folder / f".{name}.{os.getpid()}.tmp.npy"
                np.save(temporary, np.concatenate([parts[s] for s in severities]))
                os.replace(temporary, target)
                written.append(target)
                parts = {}
    temporary = folder / f".labels.{os.getpid()}.tmp.npy"
    np.save(temporary, np.tile(data.y_test, len(severities)))
    os.replace(temporary, folder / "labels.npy")
    return written


def write_imagefolder_c(data: ImageData, folder: Path, names: list[str], severities: list[int], seed: int = 0,
                        frost_textures=None, progress: bool = True, preset: str | None = None,
                        workers: int | None = None) -> list[Path]:
    """Tiny-ImageNet-C layout: ``<folder>/<name>/<severity>/<class>/<index>.png`` (lossless PNG; the
    official files are JPEG of quality 85)."""
    from PIL import Image

    written = []
    jobs = [(name, severity) for name in names for severity in severities]
    with _progress(len(jobs), progress) as bar:
        for (name, severity), images in corrupt_many(data.x_test, jobs, seed, frost_textures, preset, workers):
            root = folder / name / str(severity)
            for index, (image, label) in enumerate(zip(images, data.y_test)):
                target = root / data.class_names[label]
                target.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(target / f"{index:06d}.png")
            written.append(root)
            bar.update()
    return written


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="corrupting", unit="set", disable=None if enabled else True)
