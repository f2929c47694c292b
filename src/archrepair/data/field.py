"""Failures from the field: a labelled image set a user collected, read and brought to a model.

A field spec names one labelled image set, in one of three forms:

- a folder or ``.tar.gz``/``.tgz``/``.tar`` of class folders, ``<class>/<image>`` (no
  ``train/``/``test/`` level: every image is field data);
- an ``.npz`` with ``x`` and ``y`` (or ``x_train``/``y_train``/``x_test``/``y_test``, pooled), images
  ``(N, H, W[, C])`` uint8, labels class indices, and optional ``class_names``;
- a ``.csv`` of ``path,label`` rows (a header row ``path,label`` is allowed), paths relative to the CSV's
  folder and inside it, labels class names or class indices.

The path may carry its kind in front, as a data spec does (``npz:field.npz``, ``imagefolder:photos/``,
``tar:photos.tar.gz``, ``csv:labels.csv``); the kind must agree with what the path is.

:func:`field_data` brings the images to the model's input (size by bilinear resizing; gray to RGB by
replicating the channel, RGB to gray by luma, each said in one note), maps the field's class names to
the model's, and returns the model's data with its test split replaced by the field set (the training
split stays the model's own, the home test split is kept as ``home``), so that ``D_fail``, the
hold-out and every repair method work on it unchanged.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import ArchRepairError
from .arrays import ImageData
from .sources import IMAGE_SUFFIXES, _dir_members, _tar_members, parse_spec

FIELD_VALIDATION = 0.2
"""The share of a field set held out for validation (early stopping and the choice between candidates,
weighed with the home validation rows); the hold-out share is ``--holdout`` (0.5), the rest is the fit part."""

MIN_FIELD_FAILURES = 20
"""Fewer failures than this in the fit part draw a warning: too few to learn from or to choose on."""


@dataclass
class FieldSet:
    """Images as read (each ``(H, W)`` or ``(H, W, C)`` uint8, sizes may differ), their labels as
    written (class names, or class indices as text when ``named`` is false), and where each came from."""

    spec: str
    images: list[np.ndarray]
    labels: list[str]
    sources: list[str]
    named: bool
    notes: list[str] = field(default_factory=list)


FIELD_KINDS = {"imagefolder": "folder", "folder": "folder", "tar": "archive", "npz": "npz", "csv": "csv"}
"""The kinds a field spec may name before its path (``KIND:PATH``, as a data spec does), and the form each is."""


def field_path(spec: str) -> str:
    """The file or folder a field spec reads: its path without a ``KIND:`` prefix."""
    prefix, colon, path = spec.partition(":")
    return path if colon and prefix in FIELD_KINDS else spec


def field_kind(spec: str) -> str:
    """Which form ``spec`` is (see the module docstring; a ``KIND:`` prefix must agree with the path),
    or a one-line error."""
    path = Path(field_path(spec))
    if not path.exists():
        raise ArchRepairError(f"field set {spec!r} does not exist; give a folder of <class>/<image>, a .tar.gz of one, "
                              "an .npz with x and y, or a .csv of path,label rows")
    if path.is_dir():
        kind = "folder"
    elif path.name.endswith((".tar.gz", ".tgz", ".tar")):
        kind = "archive"
    elif path.suffix in (".npz", ".csv"):
        kind = path.suffix[1:]
    else:
        raise ArchRepairError(f"cannot tell what field set {spec!r} is; give a folder, a .tar.gz, an .npz or a .csv")
    prefix = spec.partition(":")[0]
    if field_path(spec) != spec and FIELD_KINDS[prefix] != kind:
        raise ArchRepairError(f"field set {spec!r} says {prefix} but {str(path)!r} is a {kind}; give the path alone "
                              "or its kind")
    return kind


def read_field(spec: str) -> FieldSet:
    """The labelled images ``spec`` names, decoded; undecodable images are listed in one error."""
    kind, path = field_kind(spec), field_path(spec)
    if kind == "npz":
        return _read_npz(path)
    if kind == "csv":
        return _read_csv(path)
    members = _dir_members(Path(path)) if kind == "folder" else _tar_members(Path(path))
    items, skipped = [], []
    for parts, payload in members:
        if len(parts) < 2 or payload is None or parts[-1].startswith("."):
            skipped.append("/".join(parts))
        else:
            items.append(("/".join(parts), parts[-2], payload))
    field_set = _decoded(spec, sorted(items), named=True)
    if skipped:
        field_set.notes.append(f"skipped {len(skipped)} file(s) that are not <class>/<image> with an image suffix "
                               f"(e.g. {skipped[0]!r}; suffixes: {', '.join(sorted(IMAGE_SUFFIXES))})")
    return field_set


CONVERSIONS = {
    "16-bit": "16-bit images scaled to 8 bits (value / 257, rounded)",
    "32-bit": "32-bit integer images scaled to 8 bits from their own range (minimum to 0, maximum to 255)",
    "float": "floating-point images scaled to 8 bits from their own range (minimum to 0, maximum to 255)",
    "palette": "palette images expanded to their colours",
    "cmyk": "CMYK images converted to RGB",
    "alpha": "images with an alpha channel had it dropped (the colours kept as they are, not composited)",
    "bilevel": "1-bit images read as 0 and 255",
}
"""How each image mode Pillow decodes becomes 8-bit gray or RGB (one note per kind met)."""


def to_8bit(image) -> tuple[np.ndarray, str | None]:
    """A decoded Pillow image as ``(H, W)`` (gray) or ``(H, W, 3)`` uint8, and the kind of conversion
    it needed (a key of :data:`CONVERSIONS`; ``None``: it was 8-bit gray or RGB already)."""
    mode = image.mode
    if mode in ("L", "RGB"):
        return np.asarray(image), None
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.round(np.asarray(image, dtype=np.float64) / 257).astype(np.uint8), "16-bit"
    if mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = np.zeros_like(values) if high == low else (values - low) * (255 / (high - low))
        return np.round(scaled).astype(np.uint8), "32-bit" if mode == "I" else "float"
    if mode == "1":
        return np.asarray(image.convert("L")), "bilevel"
    if mode in ("P", "PA"):
        expanded = image.convert("RGBA" if "transparency" in image.info or mode == "PA" else "RGB")
        return np.asarray(expanded.convert("RGB")), "palette"
    if mode == "CMYK":
        return np.asarray(image.convert("RGB")), "cmyk"
    if mode == "LA":
        return np.asarray(image.getchannel("L")), "alpha"
    if mode in ("RGBA", "RGBa", "RGBX"):
        return np.asarray(image.convert("RGB")), "alpha" if mode != "RGBX" else None
    return np.asarray(image.convert("RGB")), None


def _decoded(spec: str, items: list[tuple[str, str, bytes]], named: bool) -> FieldSet:
    """Decode ``(source, label, bytes)`` items to 8-bit gray or RGB (:func:`to_8bit`, one note per kind
    of conversion); every image that cannot be read is named in one error."""
    from PIL import Image

    images, broken, converted = [], [], {}
    for source, _, payload in items:
        try:
            with Image.open(io.BytesIO(payload)) as image:
                array, kind = to_8bit(image)
            images.append(array)
            if kind is not None:
                converted[kind] = converted.get(kind, 0) + 1
        except (OSError, ValueError, Image.DecompressionBombError):
            broken.append(source)
    if broken:
        raise ArchRepairError(f"field set {spec!r}: {len(broken)} image(s) cannot be decoded: "
                              f"{', '.join(repr(b) for b in broken[:5])}{' ...' if len(broken) > 5 else ''}; "
                              "remove or replace them")
    field_set = FieldSet(spec, images, [label for _, label, _ in items], [source for source, _, _ in items], named)
    field_set.notes += [f"{count} field image(s): {CONVERSIONS[kind]}" for kind, count in sorted(converted.items())]
    return field_set


def _read_csv(spec: str) -> FieldSet:
    folder = Path(spec).resolve().parent
    try:
        reader = csv.reader(Path(spec).read_text(encoding="utf-8").splitlines())
        rows = [(reader.line_num, row) for row in reader if row]
    except (UnicodeDecodeError, csv.Error) as error:
        raise ArchRepairError(f"field set {spec!r} is not a readable CSV ({error}); give path,label rows") from None
    if rows and [cell.strip().lower() for cell in rows[0][1]] == ["path", "label"]:
        rows = rows[1:]
    items, missing, seen, repeated = [], [], {}, 0
    numeric = None
    for number, row in rows:
        if len(row) != 2:
            raise ArchRepairError(f"field set {spec!r}: line {number} has {len(row)} cells; each row is path,label")
        relative, label = row[0].strip(), row[1].strip()
        if numeric is None:
            numeric = (label.isdigit(), number)
        elif label.isdigit() != numeric[0]:
            kinds = ("a class index", "a class name") if numeric[0] else ("a class name", "a class index")
            raise ArchRepairError(f"field set {spec!r}: line {number} labels its image with {kinds[1]} ({label!r}) "
                                  f"where line {numeric[1]} gives {kinds[0]}; use class names or class indices "
                                  "throughout")
        path = (folder / relative).resolve()
        if not path.is_relative_to(folder):
            raise ArchRepairError(f"field set {spec!r}: line {number} points outside the CSV's folder ({relative!r}); "
                                  "keep the images in the CSV's folder or below it")
        if path in seen:
            if seen[path][0] != label:
                raise ArchRepairError(f"field set {spec!r}: line {number} labels {relative!r} {label!r}, line "
                                      f"{seen[path][1]} labels it {seen[path][0]!r}; give each image one label")
            repeated += 1
            continue
        seen[path] = (label, number)
        if not path.is_file():
            missing.append(relative)
            continue
        items.append((relative, label, path.read_bytes()))
    if missing:
        raise ArchRepairError(f"field set {spec!r}: {len(missing)} image file(s) do not exist: "
                              f"{', '.join(repr(m) for m in missing[:5])}; paths are relative to the CSV's folder")
    field_set = _decoded(spec, items, named=not (numeric or (False,))[0])
    if repeated:
        field_set.notes.append(f"dropped {repeated} repeated CSV row(s) naming an image already listed (each image "
                               "counts once)")
    return field_set


def _read_npz(spec: str) -> FieldSet:
    try:
        with np.load(spec, allow_pickle=False) as arrays:
            if {"x", "y"} <= set(arrays.files):
                x, y = arrays["x"], arrays["y"]
            elif {"x_train", "y_train", "x_test", "y_test"} <= set(arrays.files):
                x = np.concatenate([arrays["x_train"], arrays["x_test"]])
                y = np.concatenate([arrays["y_train"], arrays["y_test"]])
            else:
                raise ArchRepairError(f"field set {spec!r} lacks arrays x and y (or x_train, y_train, x_test, y_test)")
            names = [str(n) for n in arrays["class_names"]] if "class_names" in arrays.files else None
    except ArchRepairError:
        raise
    except Exception as error:  # zipfile.BadZipFile, ValueError, EOFError, ...
        raise ArchRepairError(f"cannot read field set {spec!r} ({type(error).__name__}: {error})") from None
    if x.dtype != np.uint8 or x.ndim not in (3, 4) or len(x) != len(y) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
        raise ArchRepairError(f"field set {spec!r}: x must be uint8 (N, H, W) or (N, H, W, 1 or 3) with one label each, "
                              f"got {x.dtype} {x.shape} and {len(y)} labels")
    if y.dtype.kind not in "iu":
        raise ArchRepairError(f"field set {spec!r}: y must hold class indices, got {y.dtype}")
    if names is not None and len(y) and (y.min() < 0 or y.max() >= len(names)):
        raise ArchRepairError(f"field set {spec!r}: labels outside 0..{len(names) - 1} of its class_names")
    labels = [names[v] for v in y] if names is not None else [str(int(v)) for v in y]
    images = [image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image for image in x]
    return FieldSet(spec, images, labels, [f"row {i}" for i in range(len(y))], named=names is not None)


def conform(field_set: FieldSet, height: int, width: int, channels: int) -> tuple[np.ndarray, list[str]]:
    """The images as ``(N, height, width, channels)`` uint8 and the notes on what was converted:
    resized (bilinear) where their size differs, gray replicated to RGB or RGB to gray by luma
    (ITU-R 601-2, PIL's ``L``)."""
    from PIL import Image

    notes: list[str] = []
    resized = sum(image.shape[:2] != (height, width) for image in field_set.images)
    gray = sum(image.ndim == 2 for image in field_set.images)
    out = np.empty((len(field_set.images), height, width, channels), np.uint8)
    for index, array in enumerate(field_set.images):
        image = Image.fromarray(array)
        if array.shape[:2] != (height, width):
            image = image.resize((width, height), Image.BILINEAR)
        image = image.convert("L" if channels == 1 else "RGB")
        out[index] = np.asarray(image).reshape(height, width, channels)
    if resized:
        notes.append(f"resized {resized} of {len(out)} field images to the model's {height}x{width} (bilinear)")
    if channels == 3 and gray:
        notes.append(f"converted {gray} grayscale field images to RGB by replicating their channel")
    if channels == 1 and len(out) - gray:
        notes.append(f"converted {len(out) - gray} RGB field images to grayscale by luma (0.299 R + 0.587 G + 0.114 B)")
    return out, notes


def match_labels(field_set: FieldSet, class_names: list[str]) -> np.ndarray:
    """The field labels as the model's class indices ``(N,)``: names matched by name (so a permuted
    class order is mapped), indices checked to be among the model's classes."""
    if field_set.named:
        index = {name: i for i, name in enumerate(class_names)}
        unknown = sorted(set(field_set.labels) - set(index))
        if unknown:
            raise ArchRepairError(f"field set {field_set.spec!r}: class(es) {', '.join(repr(u) for u in unknown[:5])} "
                                  f"are not among the model's classes ({', '.join(class_names)}); rename or drop them")
        return np.array([index[label] for label in field_set.labels], np.int64)
    values = np.array([int(label) for label in field_set.labels], np.int64)
    if len(values) and (values.min() < 0 or values.max() >= len(class_names)):
        raise ArchRepairError(f"field set {field_set.spec!r}: labels outside the model's 0..{len(class_names) - 1} "
                              f"(found {values.min()}..{values.max()}); give class indices or the class names")
    return values


def image_hashes(images: np.ndarray) -> list[str]:
    """sha256 (first 16 hex digits) of each image's bytes: equal images, equal hashes."""
    return [hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()[:16] for image in images]


def field_data(home: ImageData, spec: str) -> tuple[ImageData, dict]:
    """``home`` (the model's data) with its test split replaced by the field set ``spec``, brought
    to ``home``'s image shape and class names, and what was found: ``{"spec", "images", "notes",
    "duplicates_of_training", "duplicates_of_test", "hashes"}`` (exact duplicates, by image hash)."""
    if home.spec and Path(field_path(spec)).exists() and _same_path(field_path(spec), home.spec):
        raise ArchRepairError(f"the field set {spec!r} is the model's own data; give images from the field")
    field_set = read_field(spec)
    if not field_set.images:
        raise ArchRepairError(f"field set {spec!r} holds no images; give at least one labelled image per class")
    height, width, channels = home.image_shape
    labels = match_labels(field_set, list(home.class_names))
    images, notes = conform(field_set, height, width, channels)
    notes = field_set.notes + notes
    hashes = image_hashes(images)
    training, testing = set(image_hashes(home.x_train)), set(image_hashes(home.x_test))
    of_training = sum(h in training for h in hashes)
    if of_training == len(hashes):
        raise ArchRepairError(f"every image of the field set {spec!r} is one of the model's training images; "
                              "give images from the field")
    of_test = sum(h in testing for h in hashes)
    if of_training or of_test:
        notes.append(f"{of_training} field images are byte-identical to training images and {of_test} to test images "
                     "(exact duplicates; they tell little about the field)")
    data = replace(home, spec=f"{home.spec}#field:{Path(field_path(spec)).resolve()}", x_test=images, y_test=labels,
                   _fingerprint=None, home=home)
    info = {"spec": str(Path(field_path(spec)).resolve()), "images": len(images), "notes": notes,
            "duplicates_of_training": of_training, "duplicates_of_test": of_test, "hashes": hashes}
    return data, info


def _same_path(spec: str, home_spec: str) -> bool:
    """Whether the field spec names the file or folder the model's data spec reads."""
    try:
        home_path = parse_spec(home_spec)[1]
    except ArchRepairError:
        return False
    return bool(home_path) and Path(home_path).exists() and Path(home_path).resolve() == Path(spec).resolve()


def field_warnings(split, predictions: np.ndarray, labels: np.ndarray, class_names: list[str]) -> list[str]:
    """What a user should know about a field split (one line each, with what to do): few failures
    in the fit part, classes with fewer than 2 images in the hold-out, classes with no failures."""
    warnings = []
    if (split.pool_failures or 0) < MIN_FIELD_FAILURES:
        warnings.append(f"the field set's fit part holds {split.pool_failures} failures (fewer than "
                        f"{MIN_FIELD_FAILURES}): collect more field images, or lower --holdout")
    held = np.asarray(split.holdout_indices)
    present = np.unique(labels)
    thin = [class_names[c] for c in present if (labels[held] == c).sum() < 2]
    if thin:
        warnings.append(f"class(es) {', '.join(thin[:8])} have fewer than 2 images in the field hold-out, so their "
                        "change cannot be judged: collect more of them")
    wrong = predictions != labels
    perfect = [class_names[c] for c in present if not wrong[labels == c].any()]
    if perfect:
        warnings.append(f"class(es) {', '.join(perfect[:8])} are in the field set but the model gets every one of "
                        "them right: nothing to repair there")
    return warnings
