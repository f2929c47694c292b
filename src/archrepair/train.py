"""The training loop shared by base-model training, search and fine-tuning.

No global state: the model, the loaders (which carry the device and the sampling) and the
parameters to train are passed in. Each epoch (and, where an epoch takes minutes, every few batches)
can be checkpointed to a state file and a killed run resumed from it with the same result. Spread
over processes (:mod:`archrepair.distributed`), each trains on its share of every batch and the
gradients are averaged before each step, so the weights stay the same in every process.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import distributed
from ._checks import check_same_settings
from .budget import Deadline
from .data.loader import BatchLoader
from .device import autocast
from .errors import ArchRepairError
from .evaluate import predict
from .fileio import write_bytes_atomically

SCHEDULES = ("cosine", "onecycle", "constant")


@dataclass
class TrainConfig:
    """SGD settings. ``lr`` is the peak learning rate; ``patience`` counts epochs without a better
    validation accuracy before stopping (``None``: never); ``target_accuracy`` (in [0, 1]) stops
    as soon as the accuracy on the target loader reaches it. (A wall-clock limit is a
    :class:`~archrepair.budget.Deadline` given to :func:`fit`.)"""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    label_smoothing: float = 0.0
    patience: int | None = 10
    target_accuracy: float | None = None
    max_grad_norm: float | None = None
    amp: bool = False

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ArchRepairError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.epochs < 1:
            raise ArchRepairError(f"epochs must be at least 1, got {self.epochs}")


@dataclass
class EpochRecord:
    """One epoch: mean training loss and accuracy (on augmented batches), validation and target
    accuracy (in [0, 1], ``None`` without that loader), the last learning rate, wall seconds."""

    epoch: int
    lr: float
    train_loss: float
    train_accuracy: float
    val_accuracy: float | None
    target_accuracy: float | None
    seconds: float


@dataclass
class FitResult:
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = -1
    best_val_accuracy: float | None = None
    stop_reason: str = "epochs"
    seconds: float = 0.0

    @property
    def epochs_run(self) -> int:
        return len(self.history)


def learning_rate(config: TrainConfig, step: int, total_steps: int, time_progress: float = 0.0) -> float:
    """The learning rate at optimiser step ``step`` of ``total_steps``, or at ``time_progress`` (in
    [0, 1]: the share of a time window spent, see :meth:`~archrepair.budget.Deadline.time_progress`)
    when that is further on: a schedule cut short by a time budget still anneals."""
    progress = min(max(step / max(total_steps, 1), time_progress), 1.0)
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * progress))
    warmup = 0.3  # onecycle: linear rise from lr/25 over 30% of the steps, then cosine to zero
    if progress < warmup:
        return config.lr * (1 / 25 + (1 - 1 / 25) * progress / warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * (progress - warmup) / (1 - warmup)))


def accuracy(model: nn.Module, loader: BatchLoader, amp: bool = False) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` (in eval mode) over ``loader``."""
    return accuracy_and_loss(model, loader, amp)[0]


def accuracy_and_loss(model: nn.Module, loader: BatchLoader, amp: bool = False) -> tuple[float, float]:
    """Top-1 accuracy in [0, 1] and mean cross-entropy (nats per example) of ``model`` (in eval
    mode) over ``loader``."""
    logits, labels = predict(model, loader, amp)
    if not len(labels):
        return 0.0, 0.0
    loss = nn.functional.cross_entropy(logits, labels, reduction="mean").item()
    return int((logits.argmax(1) == labels).sum()) / len(labels), loss


def fit(
    model: nn.Module,
    train_loader: BatchLoader,
    config: TrainConfig,
    val_loader: BatchLoader | None = None,
    target_loader: BatchLoader | None = None,
    parameters: Iterable[nn.Parameter] | None = None,
    set_train_mode: Callable[[nn.Module], None] | None = None,
    state_path: str | Path | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    description: str = "train",
    deadline: Deadline | None = None,
    settings: dict | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    checkpoint_every: int | None = None,
) -> FitResult:
    """Train ``model`` in place with SGD; restore the best validation state unless stopped at the target.

    Args:
        parameters: what to train (default: every parameter of ``model``).
        set_train_mode: puts the model in training mode (default ``model.train()``); pass a
            function that keeps frozen parts (their BatchNorm statistics) in eval mode.
        state_path: a file to checkpoint after every epoch; if it exists, training resumes from it
            (from the batch after the last checkpoint, with the same random draws).
        checkpoint_every: also checkpoint every this many batches within an epoch (needs
            ``state_path``; ``None``: at epoch ends only).
        settings: what made the run (JSON-like); stored in the state file, and a resume with other
            settings is refused, naming the first that differs.
        on_epoch: called with each finished epoch's record.
        deadline: stop after the first step past it (the unfinished epoch is validated and
            counts like any other; ``stop_reason`` is then ``"budget"``); with an annealing window
            (``deadline.anneal_seconds``) the schedule runs on time as well as steps, whichever is further.
        loss_fn: ``(logits, labels, rows, inputs) -> loss`` instead of the cross-entropy (label smoothing
            then does not apply); ``train_loader`` must yield rows (``with_rows``).
    """
    from tqdm import tqdm

    params = [p for p in (parameters if parameters is not None else model.parameters()) if p.requires_grad]
    if not params:
        raise ArchRepairError("nothing to train: no parameter requires a gradient")
    distributed.broadcast(itertools.chain(params, model.buffers()))
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=config.amp and train_loader.device.type == "cuda")
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    total_steps = config.epochs * len(train_loader)
    result = FitResult()
    best_state = _copy_state(model)
    start, stale = _Position(), 0
    if state_path is not None and Path(state_path).exists():
        start, stale, best_state = _resume(Path(state_path), model, optimizer, scaler, result, settings)
    started = time.perf_counter() - result.seconds
    train_mode = set_train_mode or (lambda m: m.train())

    def save(position: _Position) -> None:
        result.seconds = time.perf_counter() - started
        _save_state(Path(state_path), model, optimizer, scaler, result, position, stale, best_state, settings)

    for epoch in range(start.epoch, config.epochs):
        resumed = start if epoch == start.epoch else _Position(epoch)
        tick = time.perf_counter() - resumed.seconds
        train_mode(model)
        train_loader.set_epoch(epoch)
        loss_sum, correct, seen = resumed.loss_sum, resumed.correct, resumed.seen
        # batches done before a checkpoint are drawn again (so that later draws match) but not trained on
        batches = itertools.islice(iter(train_loader), resumed.batch, None)
        bar = tqdm(batches, desc=f"{description} {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                   disable=None, total=len(train_loader), initial=resumed.batch)
        for index, batch in enumerate(bar, start=resumed.batch):
            step = epoch * len(train_loader) + index
            images, labels = batch[0], batch[1]
            lr = learning_rate(config, step, total_steps, deadline.time_progress() if deadline is not None else 0.0)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast(train_loader.device, config.amp):
                logits = model(images)
                loss = criterion(logits.float(), labels) if loss_fn is None else loss_fn(logits.float(), labels, batch[2], images)
            optimizer.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                scaler.scale(loss).backward()
            loss = distributed.average_gradients(params, loss)
            if not torch.isfinite(loss):  # in any process: the mean is not finite either
                raise ArchRepairError(
                    f"the training loss became {loss.item()} at epoch {epoch + 1}; lower the learning rate (--lr)"
                )
            if config.max_grad_norm is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.item() * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
            if deadline is not None and deadline.expired():
                break
            if state_path is not None and checkpoint_every and (index + 1) % checkpoint_every == 0 \
                    and index + 1 < len(train_loader):
                distributed.average_buffers(model)
                # the running sums of every process, shared evenly: each resumes with its part of them
                shares = [value / distributed.world().size for value in distributed.sums(loss_sum, correct, seen)]
                save(_Position(epoch, index + 1, *shares, time.perf_counter() - tick))
        distributed.average_buffers(model)
        loss_sum, correct, seen = distributed.sums(loss_sum, correct, seen)
        val = accuracy(model, val_loader, config.amp) if val_loader is not None else None
        target = accuracy(model, target_loader, config.amp) if target_loader is not None else None
        record = EpochRecord(epoch, lr, loss_sum / max(seen, 1), correct / max(seen, 1), val, target, time.perf_counter() - tick)
        result.history.append(record)
        if val is None or result.best_val_accuracy is None or val > result.best_val_accuracy:
            result.best_epoch, result.best_val_accuracy, stale = epoch, val, 0
            best_state = _copy_state(model)
        else:
            stale += 1
        result.seconds = time.perf_counter() - started
        if on_epoch is not None:
            on_epoch(record)
        if config.target_accuracy is not None and target is not None and target >= config.target_accuracy:
            result.stop_reason = "target"
        elif config.patience is not None and stale >= config.patience:
            result.stop_reason = "patience"
        elif deadline is not None and deadline.expired():
            result.stop_reason = "budget"
        if state_path is not None:
            save(_Position(epoch + 1))
        if result.stop_reason != "epochs":
            break
    if result.stop_reason != "target":
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - started
    return result


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


@dataclass
class _Position:
    """Where a run stands: the next batch of ``epoch`` and the running sums of that epoch so far."""

    epoch: int = 0
    batch: int = 0
    loss_sum: float = 0.0
    correct: float = 0.0
    seen: float = 0.0
    seconds: float = 0.0


def _save_state(path: Path, model, optimizer, scaler, result: FitResult, position: _Position, stale: int, best_state,
                settings: dict | None) -> None:
    buffer = io.BytesIO()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": torch.get_rng_state(),
            "best_state": best_state,
            "position": asdict(position),
            "stale": stale,
            "history": [asdict(r) for r in result.history],
            "best_epoch": result.best_epoch,
            "best_val_accuracy": result.best_val_accuracy,
            "stop_reason": result.stop_reason,
            "seconds": result.seconds,
            "settings": json.dumps(settings, sort_keys=True, default=str),
        },
        buffer,
    )
    write_bytes_atomically(path, buffer.getvalue())


def _resume(path: Path, model, optimizer, scaler, result: FitResult, settings: dict | None):
    from .checkpoint import load_state

    def restore(state: dict):
        check_same_settings(json.loads(state.get("settings", "null")) or {}, settings or {}, f"from {str(path)!r}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        position = _Position(**state["position"])
        result.history = [EpochRecord(**r) for r in state["history"]]
        result.best_epoch, result.best_val_accuracy = state["best_epoch"], state["best_val_accuracy"]
        result.stop_reason, result.seconds = state["stop_reason"], state["seconds"]
        device = next(model.parameters()).device
        best_state = {k: v.to(device) for k, v in state["best_state"].items()}
        if result.stop_reason != "epochs":  # the run had already finished: no epoch left
            return _Position(10**9), state["stale"], best_state
        return position, state["stale"], best_state

    return load_state(path, restore)
