"""Data sources selected by one spec string.

Spec grammar: ``KIND[:PATH][?option=value&...]``. Kinds:

- ``digits``: scikit-learn's 8x8 handwritten digits (embedded, the default); a seeded,
  stratified 70/30 train/test split.
- ``cifar10:ROOT`` / ``cifar100:ROOT``: torchvision's CIFAR from ``ROOT`` (``?download=1`` lets
  torchvision download it there).
- ``npz:FILE``: arrays ``x_train``, ``y_train``, ``x_test``, ``y_test`` (uint8 NHWC or NHW);
  optional ``class_names``.
- ``imagefolder:PATH``: a folder or ``.tar.gz`` with ``train/<class>/*`` and ``test/<class>/*``
  (or ``val/``) images; ``?size=64`` resizes. Decoded arrays are cached (see :func:`cache_dir`).

A bare path is accepted too: ``.npz`` means npz, a folder or ``.tar.gz``/``.tgz`` means imagefolder.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np

from .._checks import non_negative_int, open_fraction, positive_int
from ..errors import ArchRepairError
from .arrays import ImageData
from .splits import stratified_split

DEFAULT_SPEC = "digits"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp", ".tif", ".tiff"}


def cache_dir() -> Path:
    """Where decoded arrays are cached: ``$ARCHREPAIR_CACHE_DIR`` or ``~/.cache/archrepair``."""
    return Path(os.environ.get("ARCHREPAIR_CACHE_DIR", Path.home() / ".cache" / "archrepair"))


def write_cache(target: Path, write) -> None:
    """``write(temporary_path)``, then move it to ``target`` in the cache atomically; a cache that
    cannot be written is a one-line error naming ``ARCHREPAIR_CACHE_DIR``."""
    temporary = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write(temporary)
        os.replace(temporary, target)
    except OSError as error:
        if temporary.parent.is_dir():
            temporary.unlink(missing_ok=True)
        raise ArchRepairError(f"the cache folder {str(cache_dir())!r} cannot be written ({error.strerror or error}); "
                              "set ARCHREPAIR_CACHE_DIR to a writable folder") from None


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Split a spec into (kind, path, options); infer the kind of a bare path."""
    body, _, query = spec.partition("?")
    options = dict(parse_qsl(query))
    kind, sep, path = body.partition(":")
    if not sep or kind not in LOADERS:
        kind, path = _infer_kind(body), body
    return kind, path, options


def load_data(spec: str = DEFAULT_SPEC) -> ImageData:
    """Load the data set a spec names (see the module docstring for the grammar)."""
    kind, path, options = parse_spec(spec)
    options = _checked_options(spec, kind, options)
    if kind != "digits" and not path:
        raise ArchRepairError(f"data spec {spec!r}: {kind} needs a path, e.g. {kind}:/data/{kind}")
    if kind not in ("digits",) and not options.get("download") and not Path(path).exists():
        raise ArchRepairError(f"data path {path!r} does not exist (data spec {spec!r}); check the path")
    data = LOADERS[kind](path, options)
    data.spec = spec
    check_classes(data)
    return data


def check_classes(data: ImageData) -> None:
    """Refuse data no classifier can be trained and judged on: an empty split, fewer than two
    classes in training, a test class with no training example (its test images could never be
    right); warn in one line when labels skip values (the model still gets a class for each)."""
    for split in ("train", "test"):
        if not len(getattr(data, f"y_{split}")):
            raise ArchRepairError(f"data {data.spec!r}: the {split} split has no images; give both splits images")
    seen = np.unique(data.y_train)
    if len(seen) < 2:
        raise ArchRepairError(f"data {data.spec!r}: the training split holds {len(seen)} class "
                              f"({', '.join(data.class_names[c] for c in seen)}); a classifier needs at least 2")
    absent = sorted(set(np.unique(data.y_test).tolist()) - set(seen.tolist()))
    if absent:
        names = ", ".join(repr(data.class_names[c]) for c in absent[:5])
        raise ArchRepairError(f"data {data.spec!r}: test class(es) {names} have no training images; add training "
                              "images of them or remove them from the test split")
    unused = sorted(set(range(data.num_classes)) - set(seen.tolist()))
    if unused:
        print(f"note: data {data.spec!r}: labels use {len(seen)} of 0..{data.num_classes - 1} (no images of "
              f"{', '.join(data.class_names[c] for c in unused[:8])}); the model will have {data.num_classes} classes",
              file=sys.stderr)


def _flag(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError("not 0/1")


OPTIONS = {  # per kind: option -> (parser, what a valid value is); the parsers are the command line's
    "digits": {"test_fraction": (open_fraction, "a fraction between 0 and 1"), "seed": (non_negative_int, "a whole number >= 0")},
    "npz": {},
    "imagefolder": {"size": (positive_int, "a whole number of pixels >= 1")},
    "cifar10": {"download": (_flag, "0 or 1")},
    "cifar100": {"download": (_flag, "0 or 1")},
}


def _checked_options(spec: str, kind: str, options: dict[str, str]) -> dict:
    """``options`` parsed; an unknown option or a bad value is an error that names it."""
    known = OPTIONS[kind]
    parsed = {}
    for name, text in options.items():
        if name not in known:
            valid = ", ".join(known) or "none"
            raise ArchRepairError(f"data spec {spec!r}: unknown option {name!r} for {kind} (valid: {valid})")
        parse, what = known[name]
        try:
            parsed[name] = parse(text)
        except argparse.ArgumentTypeError:
            raise ArchRepairError(f"data spec {spec!r}: option {name}={text!r} must be {what}") from None
    return parsed


def _infer_kind(body: str) -> str:
    if body in LOADERS:
        return body
    path = Path(body)
    if path.suffix == ".npz":
        return "npz"
    if path.is_dir() or body.endswith((".tar.gz", ".tgz", ".tar")):
        return "imagefolder"
    raise ArchRepairError(
        f"cannot tell what data {body!r} is; use KIND:PATH with KIND one of {', '.join(LOADERS)}"
    )


def _load_digits(path: str, options: dict[str, str]) -> ImageData:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    train, test = stratified_split(labels, options.get("test_fraction", 0.3), options.get("seed", 0))
    return ImageData(
        DEFAULT_SPEC, images[train], labels[train], images[test], labels[test], [str(d) for d in range(10)]
    )


def _load_npz(path: str, options: dict[str, str]) -> ImageData:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays.files)
            if missing:
                raise ArchRepairError(f"npz file {path!r} lacks arrays {sorted(missing)}")
            parts = {key: arrays[key] for key in ("x_train", "y_train", "x_test", "y_test")}
            names = [str(n) for n in arrays["class_names"]] if "class_names" in arrays.files else None
    except ArchRepairError:
        raise
    except Exception as error:  # zipfile.BadZipFile, ValueError, EOFError, ...
        raise ArchRepairError(f"cannot read npz file {path!r} ({type(error).__name__}: {error}); is it complete?") from None
    for key in ("x_train", "x_test"):
        if parts[key].ndim == 3:
            parts[key] = parts[key][..., None]
        shape = parts[key].shape
        if parts[key].ndim == 4 and shape[-1] not in (1, 3):
            hint = (f"it looks like (N, C, H, W) with C = {shape[1]}: transpose with x.transpose(0, 2, 3, 1)"
                    if shape[1] in (1, 3) else "images must be (N, H, W, C) with 1 or 3 channels last")
            raise ArchRepairError(f"npz file {path!r}: {key} has shape {shape}, whose last axis is not 1 or 3 "
                                  f"channels; {hint}")
    for key in ("y_train", "y_test"):
        labels = parts[key]
        if labels.dtype.kind == "f" and labels.size and not np.all(np.isfinite(labels) & (labels == np.round(labels))):
            raise ArchRepairError(f"npz file {path!r}: {key} holds labels that are not whole numbers (e.g. "
                                  f"{labels[labels != np.round(labels)][:3].tolist()}); give class indices 0, 1, ...")
        if labels.dtype.kind not in "biuf":
            raise ArchRepairError(f"npz file {path!r}: {key} must hold class indices, got {labels.dtype}")
        if labels.size and labels.min() < 0:
            raise ArchRepairError(f"npz file {path!r}: {key} holds negative labels; give class indices 0, 1, ...")
        parts[key] = labels.astype(np.int64)
    if names is None:
        labels = np.concatenate([parts["y_train"], parts["y_test"]])
        names = [str(c) for c in range(int(labels.max()) + 1 if labels.size else 0)]
    return ImageData(path, parts["x_train"], parts["y_train"], parts["x_test"], parts["y_test"], names)


def _load_torchvision_cifar(kind: str):
    def load(path: str, options: dict[str, str]) -> ImageData:
        from torchvision import datasets

        cls = datasets.CIFAR10 if kind == "cifar10" else datasets.CIFAR100
        download = options.get("download", False)
        try:
            train = cls(path, train=True, download=download)
            test = cls(path, train=False, download=download)
        except RuntimeError as error:
            raise ArchRepairError(
                f"{kind} not found under {path!r} ({error}); point to the folder holding "
                f"{train_folder_name(kind)} or add ?download=1"
            ) from None
        return ImageData(
            path, train.data, np.asarray(train.targets), test.data, np.asarray(test.targets), list(train.classes)
        )

    return load


def train_folder_name(kind: str) -> str:
    return "cifar-10-batches-py" if kind == "cifar10" else "cifar-100-python"


def _load_imagefolder(path: str, options: dict[str, str]) -> ImageData:
    size = options.get("size")
    source = Path(path)
    key = hashlib.sha256(f"{source.resolve()}|{_listing(source)}|{size}".encode()).hexdigest()[:24]
    cached = cache_dir() / "data" / f"imagefolder-{key}.npz"
    if cached.exists():
        return _load_npz(str(cached), {})
    members = _tar_members(source) if source.is_file() else _dir_members(source)
    data = _decode_members(path, members, size)
    _save_npz_atomically(cached, data)
    return data


def _listing(source: Path) -> str:
    """What the cache of ``source`` depends on: every file's name, size and time (a folder), or the
    archive's own (a file); adding, removing or changing one image changes it."""
    files = [source] if source.is_file() else sorted(f for f in source.rglob("*") if f.is_file())
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.relative_to(source) if file != source else ''}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _is_image(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def _dir_members(root: Path):
    """``(path parts, bytes)`` of every file below ``root``; ``None`` for files without an image suffix."""
    for file in sorted(root.rglob("*")):
        if file.is_file():
            yield file.relative_to(root).parts, file.read_bytes() if _is_image(file.name) else None


def _tar_members(archive: Path):
    """As :func:`_dir_members`, for the files of an archive."""
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                if member.isfile():
                    yield Path(member.name).parts, tar.extractfile(member).read() if _is_image(member.name) else None
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ArchRepairError(f"cannot read archive {str(archive)!r} ({type(error).__name__}: {error}); "
                              "is it complete? Give a .tar.gz/.tar or a folder") from None


def _decode_members(path: str, members, size: int | None) -> ImageData:
    """Decode (path parts, bytes) pairs laid out as ``[...]/split/class/file``."""
    from PIL import Image
    from tqdm import tqdm

    found: dict[str, list[tuple[str, str, np.ndarray]]] = {"train": [], "test": []}
    skipped: list[str] = []
    for parts, payload in tqdm(members, desc=f"decoding {Path(path).name}", unit="img", disable=None):
        if len(parts) < 3 or parts[-3] not in ("train", "test", "val"):
            continue
        if payload is None:
            skipped.append("/".join(parts))
            continue
        split = "train" if parts[-3] == "train" else "test"
        try:
            image = Image.open(io.BytesIO(payload))
            image = image.convert("L" if image.mode in ("L", "1", "I;16") else "RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise ArchRepairError(f"{'/'.join(parts)!r} in {path!r} is not a readable image ({error}); "
                                  "remove or replace it") from None
        if size is not None and image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR)
        found[split].append((parts[-2], parts[-1], np.asarray(image)))
    if not found["train"] or not found["test"]:
        raise ArchRepairError(
            f"{path!r} must hold train/<class>/<image> and test/<class>/<image> (or val/); "
            f"found {len(found['train'])} training and {len(found['test'])} test images"
        )
    if skipped:
        print(f"note: skipped {len(skipped)} file(s) of {path!r} that are not images of a supported kind "
              f"(e.g. {skipped[0]!r}; supported: {', '.join(sorted(IMAGE_SUFFIXES))})", file=sys.stderr)
    classes = sorted({c for c, _, _ in found["train"]})
    orphans = sorted({c for c, _, _ in found["test"]} - set(classes))
    if orphans:
        raise ArchRepairError(f"{path!r}: test class folder(s) {', '.join(repr(c) for c in orphans[:5])} have no "
                              "training images (train/<class>/ is missing or empty); add them or remove the test folder")
    index = {c: i for i, c in enumerate(classes)}
    gray = sum(item[2].ndim == 2 for split in found.values() for item in split)
    if 0 < gray < sum(len(split) for split in found.values()):  # both modes: gray to RGB, by replication
        for split in found:
            found[split] = [(c, n, np.repeat(x[..., None], 3, -1) if x.ndim == 2 else x) for c, n, x in found[split]]
        print(f"note: {path!r} mixes grayscale and RGB images; converted its {gray} grayscale images to RGB by "
              "replicating their channel", file=sys.stderr)
    arrays = []
    for split in ("train", "test"):
        items = sorted(item for item in found[split] if item[0] in index)
        shapes = {item[2].shape for item in items}
        if len(shapes) != 1:
            raise ArchRepairError(f"{path!r}: images differ in size {sorted(shapes)[:3]}; add ?size=N to resize")
        x = np.stack([item[2] for item in items])
        arrays += [x if x.ndim == 4 else x[..., None], np.array([index[item[0]] for item in items], np.int64)]
    return ImageData(path, *arrays, classes)


def _save_npz_atomically(target: Path, data: ImageData) -> None:
    def write(temporary: Path) -> None:
        with open(temporary, "wb") as handle:
            np.savez(handle, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test,
                     class_names=np.array(data.class_names))

    write_cache(target, write)


LOADERS = {
    "digits": _load_digits,
    "npz": _load_npz,
    "imagefolder": _load_imagefolder,
    "cifar10": _load_torchvision_cifar("cifar10"),
    "cifar100": _load_torchvision_cifar("cifar100"),
}
