"""Train a zoo model on a data set and write it as a checkpoint (the ``archrepair train`` job)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ._checks import environment, replace_stale
from .checkpoint import ModelRecord, save_checkpoint
from .data.arrays import ImageData
from .data.loader import BatchLoader
from .data.splits import indices_digest, stratified_split
from .errors import ArchRepairError
from .models import get_model
from .train import EpochRecord, FitResult, TrainConfig, accuracy, fit


@dataclass
class TrainJob:
    """What to train, on what, and how. ``augment`` ``auto`` means crop-flip for colour images of
    at least 32 pixels and none otherwise (flipping digits changes their meaning)."""

    model: str = "small_cnn"
    width: float = 1.0
    seed: int = 0
    val_fraction: float = 0.1
    augment: str = "auto"
    channels_last: bool = False

    def resolved_augment(self, data: ImageData) -> str:
        if self.augment != "auto":
            return self.augment
        height, _, channels = data.image_shape
        return "crop-flip" if channels == 3 and height >= 32 else "none"


def make_loader(data: ImageData, split: str, record: ModelRecord, indices=None, batch_size: int = 256,
                device: torch.device | str = "cpu", channels_last: bool = False, **options) -> BatchLoader:
    """A loader over ``data``'s ``train`` or ``test`` split with the record's normalisation."""
    x, y = (data.x_train, data.y_train) if split == "train" else (data.x_test, data.y_test)
    return BatchLoader(x, y, record.mean, record.std, indices=indices, batch_size=batch_size, device=device,
                       channels_last=channels_last, **options)


def train_base_model(
    data: ImageData,
    job: TrainJob,
    config: TrainConfig,
    out: str | Path,
    device: torch.device,
    resume: bool = False,
    on_epoch=None,
    say=None,
    resumable: bool = True,
    checkpoint_every: int | None = None,
) -> tuple[torch.nn.Module, ModelRecord, FitResult]:
    """Train ``job.model`` on ``data`` (early stopping on a held-out validation split), evaluate it
    on the test split and save the checkpoint folder ``out``.

    A state file ``<out>.state.pt`` is written after every epoch (and every ``checkpoint_every``
    batches within one), with the job's settings; with
    ``resume`` a killed run continues from it (refused when the settings differ); without, a state
    left by an earlier run is replaced (``say`` tells; ``resumable``: the caller offers ``--resume``).
    It is removed once the checkpoint is written.
    """
    out = Path(out)
    state_path = out.with_name(out.name + ".state.pt")
    if resume and not state_path.exists() and (out / "model.json").exists():
        raise ArchRepairError(f"nothing to resume: {str(out)!r} is a finished checkpoint; use --overwrite to train again")
    replace_stale(state_path, resume, say or (lambda message: None), "the unfinished training state", resumable)
    torch.manual_seed(job.seed)
    height, width, channels = data.image_shape
    arguments = {"num_classes": data.num_classes, "in_channels": channels, "width": job.width}
    model = get_model(job.model, **arguments)
    check_input_size(model, height, width, channels)
    mean, std = data.channel_stats()
    record = ModelRecord(job.model, arguments, mean, std, [height, width, channels], list(data.class_names),
                         data={"spec": data.spec, "fingerprint": data.fingerprint})
    train_idx, val_idx = stratified_split(data.y_train, job.val_fraction, job.seed)
    common = {"device": device, "channels_last": job.channels_last}
    train_loader = make_loader(data, "train", record, train_idx, config.batch_size, shuffle=True,
                               augment=job.resolved_augment(data), seed=job.seed, **common)
    val_loader = make_loader(data, "train", record, val_idx, **common) if len(val_idx) else None
    test_loader = make_loader(data, "test", record, **common)
    model = model.to(device, memory_format=torch.channels_last if job.channels_last else torch.preserve_format)
    settings = {"job": asdict(job), "config": asdict(config), "data": data.fingerprint, "device": str(device)}
    result = fit(model, train_loader, config, val_loader=val_loader,
                 target_loader=test_loader if config.target_accuracy is not None else None,
                 state_path=state_path, on_epoch=on_epoch, settings=settings, checkpoint_every=checkpoint_every)
    test_accuracy = accuracy(model, test_loader, config.amp)
    record.training = {
        "seed": job.seed, "job": asdict(job), "config": asdict(config), "augment": job.resolved_augment(data),
        "train_examples": len(train_idx), "val_examples": len(val_idx), "stop_reason": result.stop_reason,
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "seconds": round(result.seconds, 2),
        "history": [asdict(r) for r in result.history], "device": str(device), **environment(),
        "val_indices_sha256": indices_digest(val_idx),
    }
    record.metrics = {"test_accuracy": test_accuracy, "val_accuracy": result.best_val_accuracy}
    save_checkpoint(model.cpu(), record, out)
    state_path.unlink(missing_ok=True)
    return model, record, result


def check_input_size(model: torch.nn.Module, height: int, width: int, channels: int) -> torch.Tensor:
    """``model``'s output for two blank ``channels`` x ``height`` x ``width`` images (eval mode), or a
    clear error when it cannot take them."""
    try:
        with torch.no_grad():
            return model.eval()(torch.zeros(2, channels, height, width))
    except RuntimeError as error:
        raise ArchRepairError(
            f"{type(model).__name__} cannot take {height}x{width} images with {channels} channels "
            f"({str(error).splitlines()[0]}); choose another model (small_cnn and the ResNets take 8x8 and up), "
            "resize the data or check the input size"
        ) from None


def describe_epoch(record: EpochRecord) -> str:
    parts = [f"epoch {record.epoch + 1}", f"loss {record.train_loss:.3f}", f"train {record.train_accuracy:.3f}"]
    if record.val_accuracy is not None:
        parts.append(f"val {record.val_accuracy:.3f}")
    if record.target_accuracy is not None:
        parts.append(f"test {record.target_accuracy:.3f}")
    parts += [f"lr {record.lr:.4f}", f"{record.seconds:.1f}s"]
    return "  ".join(parts)
