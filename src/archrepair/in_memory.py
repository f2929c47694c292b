"""The in-memory door: a model a Python user holds (an ``nn.Module``) and its data as arrays, tensors
or torch ``Dataset`` objects, repaired without the user writing a checkpoint folder.

The model and the data are staged once in a folder of archrepair's (the weights as safetensors with
a record, as ``archrepair import`` writes them; the data as an ``.npz``), so that the repair is the
very plan an imported checkpoint gets: :func:`stage` returns the checkpoint folder and the data spec.
The model is rebuilt from the object given (kept in this process, :func:`~archrepair.models.external.
remember_model`), never from pickled code; its blocks are found as ``import`` finds them, or named.

Data, in any of these forms:

- an :class:`~archrepair.data.ImageData`;
- a mapping with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (and optionally ``class_names``), or
  a tuple of those four: images ``(N, H, W[, C])`` uint8, or ``(N, C, H, W)`` float tensors/arrays in
  [0, 1] (stored as uint8: x 255, rounded); labels class indices;
- a tuple ``(train_dataset, test_dataset)`` of torch ``Dataset`` objects whose items are
  ``(image, label)``, the image a ``(C, H, W)`` float tensor in [0, 1] (``ToTensor()``'s output).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .base_model import check_input_size
from .checkpoint import ModelRecord, save_checkpoint
from .data import ImageData, load_data
from .errors import ArchRepairError, ArchRepairTypeError
from .fileio import npz_bytes, write_bytes_atomically
from .models import resolve_blocks
from .models.external import EXTERNAL, remember_model

PARTS = ("x_train", "y_train", "x_test", "y_test")


def stage(model: nn.Module, data, folder: str | Path, classes: Sequence[str] | None = None,
          mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
          blocks: Sequence[str] | None = None) -> tuple[str, str]:
    """``(checkpoint folder, data spec)`` of ``model`` and ``data`` (see the module docstring) written
    into ``folder``: ``data.npz`` and ``model/``. ``classes``: class names in label order (default:
    the data's); ``mean``, ``std``: the per-channel normalisation the model was trained with, in
    [0, 1] units (default: the training images'); ``blocks``: block names where the family has no
    automatic list."""
    if not isinstance(model, nn.Module):
        raise ArchRepairTypeError(f"the model must be a torch.nn.Module, got {type(model).__name__}")
    arrays = image_arrays(data)
    if classes is not None:
        arrays["class_names"] = np.asarray([str(name) for name in classes])
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    npz = folder / "data.npz"
    buffer = npz_bytes(arrays)
    if not npz.exists() or npz.read_bytes() != buffer:
        write_bytes_atomically(npz, buffer)
    images = load_data(f"npz:{npz}")
    model = model.eval().cpu()
    height, width, channels = images.image_shape
    outputs = check_input_size(model, height, width, channels)
    if outputs.dim() != 2 or outputs.shape[1] != len(images.class_names):
        raise ArchRepairError(f"the model outputs {tuple(outputs.shape[1:])} per image but the data has "
                              f"{len(images.class_names)} classes; give the model and data that belong together")
    found_mean, found_std = images.channel_stats()
    mean, std = list(mean or found_mean), list(std or found_std)
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise ArchRepairError(f"mean and std need {channels} values each (standard deviations above 0)")
    arguments = {"source": "memory", "key": remember_model(model), "kwargs": {}, "blocks": list(blocks or [])}
    resolve_blocks(model, arguments["blocks"] or None)  # a model whose blocks cannot be found fails here
    record = ModelRecord(EXTERNAL, arguments, mean, std, [height, width, channels], list(images.class_names),
                         data={"spec": images.spec, "fingerprint": images.fingerprint},
                         training={"in_memory": type(model).__qualname__})
    save_checkpoint(model, record, folder / "model")
    return str(folder / "model"), images.spec


def image_arrays(data) -> dict[str, np.ndarray]:
    """The four arrays (uint8 ``(N, H, W, C)`` images, int64 labels) and the class names, if given,
    of ``data`` in any form the module docstring lists."""
    if isinstance(data, ImageData):
        return {"x_train": data.x_train, "y_train": data.y_train, "x_test": data.x_test, "y_test": data.y_test,
                "class_names": np.asarray(list(data.class_names))}
    if isinstance(data, Mapping):
        missing = [part for part in PARTS if part not in data]
        if missing:
            raise ArchRepairError(f"the data lacks {', '.join(missing)}; give x_train, y_train, x_test and y_test")
        arrays = {part: data[part] for part in PARTS}
        if data.get("class_names") is not None:
            arrays["class_names"] = np.asarray([str(name) for name in data["class_names"]])
    elif isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(d, torch.utils.data.Dataset) for d in data):
        (x_train, y_train), (x_test, y_test) = (_dataset_arrays(d, name) for d, name in zip(data, ("train", "test")))
        arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    elif isinstance(data, (tuple, list)) and len(data) == 4:
        arrays = dict(zip(PARTS, data))
    else:
        raise ArchRepairTypeError("the data must be an ImageData, a mapping or tuple of x_train, y_train, x_test, "
                                  f"y_test, or a (train, test) pair of torch Datasets; got {type(data).__name__}")
    for part in ("x_train", "x_test"):
        arrays[part] = _uint8_images(arrays[part], part)
    for part in ("y_train", "y_test"):
        arrays[part] = np.asarray(torch.as_tensor(arrays[part]).cpu()).astype(np.int64).reshape(-1)
    return arrays


def _uint8_images(images, part: str) -> np.ndarray:
    """``images`` as uint8 ``(N, H, W, C)``: uint8 as given (channels last), floats in [0, 1]
    channels first (a tensor's layout) scaled by 255 and rounded."""
    array = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind != "f" or array.ndim != 4 or array.shape[1] not in (1, 3):
        raise ArchRepairError(f"{part} must be uint8 (N, H, W[, C]) or float (N, C, H, W) in [0, 1], got "
                              f"{array.dtype} {tuple(array.shape)}")
    if array.size and (array.min() < 0 or array.max() > 1):
        raise ArchRepairError(f"{part} holds floats outside [0, 1] (from {array.min():.3g} to {array.max():.3g}); "
                              "give unnormalised images (the normalisation goes in mean and std)")
    return np.round(array.transpose(0, 2, 3, 1) * 255).astype(np.uint8)


def _dataset_arrays(dataset, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Every ``(image, label)`` of ``dataset`` stacked: images ``(N, C, H, W)`` floats, labels."""
    images, labels = [], []
    for index in range(len(dataset)):
        image, label = dataset[index]
        if not isinstance(image, torch.Tensor) or image.dim() != 3:
            raise ArchRepairError(f"the {name} dataset's item {index} is a {type(image).__name__}, not a (C, H, W) "
                                  "tensor; give it transform=torchvision.transforms.ToTensor()")
        images.append(image)
        labels.append(int(label))
    if not images:
        raise ArchRepairError(f"the {name} dataset is empty")
    return torch.stack(images).numpy(), np.asarray(labels, dtype=np.int64)

