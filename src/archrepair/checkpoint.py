"""Model checkpoints: a folder with weights in safetensors and a JSON record to rebuild and use them.

Layout of a checkpoint folder::

    model.safetensors   the state dict
    model.json          {"format", "architecture", "arguments", "preprocessing", "class_names",
                         "data", "training", "metrics", "versions"}

Loading never unpickles: weights come from safetensors, the record from JSON.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__
from .data.arrays import ImageData
from .errors import ArchRepairError
from .fileio import replace_directory, staging_directory, write_text_atomically
from .models import get_model
from .models.external import EXTERNAL, build_external

FORMAT = "archrepair-model/1"
WEIGHTS_FILE = "model.safetensors"
RECORD_FILE = "model.json"


@dataclass
class ModelRecord:
    """Everything besides the weights that is needed to rebuild a model and feed it data.

    ``mean``/``std`` are per-channel, in [0, 1] units; ``input_shape`` is ``(H, W, C)``;
    ``lineage``: the weight fingerprints of the models this one was repaired from, oldest first
    (their failure splits apply to it too).
    """

    architecture: str
    arguments: dict
    mean: list[float]
    std: list[float]
    input_shape: list[int]
    class_names: list[str]
    data: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    repair: dict = field(default_factory=dict)
    lineage: list[str] = field(default_factory=list)
    format: str = FORMAT

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def check_fits(self, data: ImageData) -> None:
        """Raise a clear error when ``data`` has another number of classes or image shape."""
        if data.num_classes != self.num_classes:
            raise ArchRepairError(
                f"the model predicts {self.num_classes} classes but data {data.spec!r} has {data.num_classes}; "
                "use the data set the model was trained on"
            )
        if list(data.image_shape) != list(self.input_shape):
            raise ArchRepairError(
                f"the model takes images of shape {tuple(self.input_shape)} (H, W, C) but data {data.spec!r} "
                f"has {data.image_shape}; resize the data (imagefolder: ?size=N) or use a matching model"
            )


BlockBuilder = Callable[[nn.Module, dict, torch.Tensor], nn.Module]
_BLOCK_BUILDERS: dict[str, BlockBuilder] = {}


def register_block_builder(kind: str):
    """Register the decorated ``build(model, repair_entry, example) -> model``, which puts a repaired
    block of ``kind`` (``record.repair["kind"]``) into a freshly built model; the search registers
    ``genotype`` (a searched block), so this module needs nothing from the layers above it."""

    def decorate(build: BlockBuilder) -> BlockBuilder:
        _BLOCK_BUILDERS[kind] = build
        return build

    return decorate


def build_model(record: ModelRecord, folder: Path | None = None) -> nn.Module:
    """An untrained model of the record's architecture (a zoo name, or ``external``: a user's model
    rebuilt as :mod:`archrepair.models.external` says, never from code inside ``folder``); for a
    repaired model, with the repaired block (``record.repair``, built by the builder registered for
    its kind) in place."""
    if not isinstance(record.arguments, dict):
        raise ArchRepairError(f"the record's arguments {record.arguments!r} are not a mapping")
    try:
        model = (build_external(record.arguments, folder) if record.architecture == EXTERNAL
                 else get_model(record.architecture, **record.arguments))
    except (TypeError, ValueError) as error:
        raise ArchRepairError(f"the record's arguments {record.arguments!r} do not fit {record.architecture!r} "
                              f"({error})") from None
    if not record.repair:
        return model
    kind = record.repair.get("kind", "genotype")
    if kind not in _BLOCK_BUILDERS:
        raise ArchRepairError(f"the record's repaired block is of an unknown kind {kind!r}")
    height, width, channels = record.input_shape
    return _BLOCK_BUILDERS[kind](model, record.repair, torch.zeros(2, channels, height, width))


def save_checkpoint(model: nn.Module, record: ModelRecord, path: str | Path) -> Path:
    """Write ``model`` and ``record`` to folder ``path`` atomically (an old folder is replaced last)."""
    target = Path(path)
    record.versions = {"archrepair": __version__, "torch": torch.__version__, "python": platform.python_version()}
    staging = staging_directory(target)
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(staging / WEIGHTS_FILE))
    write_text_atomically(staging / RECORD_FILE, json.dumps(asdict(record), indent=1))
    replace_directory(staging, target)
    return target


def load_record(path: str | Path) -> ModelRecord:
    folder = _checkpoint_folder(path)
    try:
        raw = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
        record = ModelRecord(**raw)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as error:
        raise ArchRepairError(f"{str(folder / RECORD_FILE)!r} is not an archrepair model record "
                              f"({type(error).__name__}: {str(error).splitlines()[0][:120]})") from None
    shape_ok = isinstance(record.input_shape, list) and len(record.input_shape) == 3 and all(
        isinstance(v, int) and v > 0 for v in record.input_shape)
    if not shape_ok or not isinstance(record.class_names, list) or not record.class_names:
        raise ArchRepairError(f"{str(folder / RECORD_FILE)!r} is not an archrepair model record "
                              "(input_shape must be [H, W, C] and class_names a non-empty list)")
    return record


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, ModelRecord]:
    """Rebuild the model of a checkpoint folder (in eval mode) and return it with its record."""
    record = load_record(path)
    folder = _checkpoint_folder(path)
    try:
        model = build_model(record, folder)
    except ArchRepairError as error:
        raise ArchRepairError(f"{str(folder / RECORD_FILE)!r}: {error}") from None
    try:
        weights = load_file(str(folder / WEIGHTS_FILE), device="cpu")
    except Exception as error:  # safetensors' SafetensorError, OSError: a truncated or foreign file
        raise ArchRepairError(f"{str(folder / WEIGHTS_FILE)!r} cannot be read ({str(error).splitlines()[0][:120]}); "
                              "is it complete? Copy the checkpoint again or retrain") from None
    check_weights_fit(model, weights, f"checkpoint weights of {record.architecture}{record.arguments}",
                      "a checkpoint with another number of classes or width?")
    model.load_state_dict(weights, strict=True)
    return model.to(device).eval(), record


def load(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """The model of a checkpoint or repaired-model folder, as a plain ``nn.Module`` in eval mode."""
    return load_checkpoint(path, device)[0]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights from a local file: safetensors, or a state dict saved with ``torch.save`` (loaded with
    ``weights_only=True``; a ``state_dict`` or ``model`` entry holding it, and DataParallel's
    ``module.`` prefixes, are unwrapped). Nothing is unpickled beyond tensors and containers."""
    path = Path(path)
    if not path.is_file():
        raise ArchRepairError(f"weights file {str(path)!r} does not exist")
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ArchRepairError(f"weights file {str(path)!r} cannot be read as safetensors or a state dict "
                              f"({str(error).splitlines()[0][:120]})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ArchRepairError(f"weights file {str(path)!r} does not hold a state dict (names to tensors)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_state(path: str | Path, restore: Callable[[dict], object] | None = None):
    """The saved resume state at ``path`` (loaded with ``weights_only=True``), and ``restore(state)``'s
    result when given (putting the state back into models and optimisers). A file that cannot be read
    or restored is damaged (a write cut short, another version's file): one line saying so, with what
    to do; never advice to load it unsafely."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state if restore is None else restore(state)
    except ArchRepairError:
        raise
    except Exception:
        raise ArchRepairError(f"the state file {str(path)!r} is damaged or from another version; rerun without "
                              "--resume to start afresh") from None


def model_fingerprint(path: str | Path) -> str:
    """sha256 (first 16 hex digits) of a checkpoint's weights file."""
    digest = hashlib.sha256((_checkpoint_folder(path) / WEIGHTS_FILE).read_bytes())
    return digest.hexdigest()[:16]


def _checkpoint_folder(path: str | Path) -> Path:
    folder = Path(path)
    if folder.is_file() and folder.name in (WEIGHTS_FILE, RECORD_FILE):
        folder = folder.parent
    for name in (WEIGHTS_FILE, RECORD_FILE):
        if not (folder / name).is_file():
            raise ArchRepairError(
                f"{str(folder)!r} is not a checkpoint folder (missing {name}); give the folder `archrepair train` wrote"
            )
    return folder


def check_weights_fit(model: nn.Module, weights: dict[str, torch.Tensor], source: str, hint: str) -> None:
    """Raise a clear error when ``weights`` (from ``source``) lack or add names, differ in a shape
    against ``model``'s state dict (``hint`` says what to check), or hold a value that is not finite
    (naming the tensor)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ArchRepairError(f"{source} do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}; {hint}")
    for key, tensor in weights.items():
        if tensor.shape != expected[key].shape:
            raise ArchRepairError(f"{source} do not fit the model: {key} has shape {tuple(tensor.shape)} but the model "
                                  f"expects {tuple(expected[key].shape)}; {hint}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            broken = int((~torch.isfinite(tensor)).sum())
            raise ArchRepairError(f"{source}: {key} holds {broken} of {tensor.numel()} values that are not finite (NaN "
                                  "or Inf), so every prediction is meaningless; use weights from before the training "
                                  "diverged, or retrain")
