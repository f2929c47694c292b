"""The architecture search (paper Eq. 9, 10): alternating first-order steps, as PC-DARTS.

Each iteration takes one batch of the search-train split for a weight step (SGD on the block's
operation weights) and, after the warm-up epochs, first one batch of the search-val split for an
architecture step (Adam on the alphas and betas). Beta-decay regularisation (Beta-DARTS: lambda
times the mean over edges of logsumexp(alpha)) guards against the drift towards parameter-free
operations. Only the relaxed block trains; the caller keeps the rest of the network frozen.

Spread over processes (:mod:`archrepair.distributed`), both steps average their gradients (the
weights' and the alphas' and betas') over the processes before stepping, so every process holds the
same weights and the same architecture after every step.
"""

from __future__ import annotations

import io
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import distributed
from ..budget import Deadline
from ..data.loader import BatchLoader
from ..device import autocast
from ..errors import ArchRepairError
from ..fileio import write_bytes_atomically
from ..train import accuracy
from .discrete import discretise
from .relaxed import RelaxedBlock

LossFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class SearchConfig:
    """Weight steps: SGD ``lr`` (cosine to 0), ``momentum``, ``weight_decay``, ``grad_clip``.
    Architecture steps: Adam ``arch_lr``, betas (0.5, 0.999), ``arch_weight_decay``; from epoch
    ``warmup_epochs`` on. ``beta_decay``: the Beta-DARTS regularisation weight (0 turns it off).
    ``amp``: forward passes in mixed precision (float16 on CUDA, bfloat16 on CPU).
    ``failures_in_architecture_split``: ``D_fail``'s rows stay in both halves of the search data
    (``False``: they all go to the weight half, so the architecture is chosen on other examples)."""

    epochs: int = 6
    warmup_epochs: int = 1
    batch_size: int = 64
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    arch_lr: float = 0.03
    arch_weight_decay: float = 1e-3
    beta_decay: float = 0.5
    amp: bool = False
    failures_in_architecture_split: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.warmup_epochs < 0:
            raise ArchRepairError(f"search epochs must be >= 1 and warm-up >= 0, got {self.epochs}, {self.warmup_epochs}")


@dataclass
class SearchEpoch:
    """One search epoch; ``architecture``: the discretised genotype then; ``weights``: every edge's
    softmax architecture weights then (``Genotype.alphas``: the trajectory of the search).
    ``seconds`` splits into ``weight_seconds`` (weight steps), ``architecture_seconds``
    (architecture steps, their batches included), ``validation_seconds`` (the epoch's accuracy pass)
    and the rest (batches of the weight half, book-keeping); on CUDA the split is approximate."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_accuracy: float
    architecture: str
    seconds: float
    weights: list = field(default_factory=list)
    weight_seconds: float = 0.0
    architecture_seconds: float = 0.0
    validation_seconds: float = 0.0


@dataclass
class SearchHistory:
    epochs: list[SearchEpoch] = field(default_factory=list)
    seconds: float = 0.0
    stop_reason: str = "epochs"


def search(
    model: nn.Module,
    block: RelaxedBlock,
    train_loader: BatchLoader,
    val_loader: BatchLoader,
    config: SearchConfig,
    set_train_mode: Callable[[nn.Module], None],
    state_path: Path | None = None,
    on_epoch: Callable[[SearchEpoch], None] | None = None,
    deadline: Deadline | None = None,
    loss_fn: LossFunction | None = None,
    score_loader: BatchLoader | None = None,
) -> SearchHistory:
    """Run the search in place on ``block`` (inside ``model``); resumable from ``state_path``.
    Past ``deadline`` it stops after the current step (``history.stop_reason == "budget"``).
    ``loss_fn``: ``(logits, labels, rows, inputs) -> loss`` for both steps instead of the cross-entropy
    (the loaders must then yield rows). ``score_loader``: the rows whose accuracy each epoch reports
    (``SearchEpoch.val_accuracy``; default: all of ``val_loader``)."""
    from tqdm import tqdm

    weights = [p for p in block.weight_parameters() if p.requires_grad]
    weight_opt = torch.optim.SGD(weights, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    arch_opt = torch.optim.Adam(block.architecture_parameters(), lr=config.arch_lr, betas=(0.5, 0.999),
                                weight_decay=config.arch_weight_decay)
    distributed.broadcast(itertools.chain(block.parameters(), block.buffers()))
    history = SearchHistory()
    start = 0
    if state_path is not None and state_path.exists():
        start = _resume(state_path, block, weight_opt, arch_opt, history)
    total_steps = config.epochs * len(train_loader)
    started = time.perf_counter() - history.seconds
    for epoch in range(start, config.epochs):
        tick = time.perf_counter()
        set_train_mode(model)
        train_loader.set_epoch(epoch)
        val_batches = _cycle(val_loader, epoch)
        loss_sum = correct = seen = 0.0
        spent = {"weight": 0.0, "architecture": 0.0}
        bar = tqdm(train_loader, desc=f"search {epoch + 1}/{config.epochs}", unit="batch", leave=False, disable=None)
        for step, (images, labels, *rows) in enumerate(bar, start=epoch * len(train_loader)):
            if epoch >= config.warmup_epochs:
                clock = time.perf_counter()
                val_images, val_labels, *val_rows = next(val_batches)
                architecture_step(model, block, val_images, val_labels, arch_opt, config, loss_fn, *val_rows)
                spent["architecture"] += time.perf_counter() - clock
            lr = config.lr * 0.5 * (1 + math.cos(math.pi * step / max(total_steps, 1)))
            clock = time.perf_counter()
            logits, loss = weight_step(model, images, labels, weights, weight_opt, lr, config, loss_fn, *rows)
            spent["weight"] += time.perf_counter() - clock
            if not torch.isfinite(loss):
                raise ArchRepairError(f"the search loss became {loss.item()} at epoch {epoch + 1}; lower --search-lr")
            loss_sum += loss.item() * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
            if deadline is not None and deadline.expired():
                history.stop_reason = "budget"
                break
        distributed.average_buffers(model)
        loss_sum, correct, seen = distributed.sums(loss_sum, correct, seen)
        genotype = discretise(block)
        clock = time.perf_counter()
        val_accuracy = accuracy(model, val_loader if score_loader is None else score_loader, config.amp)
        validation = time.perf_counter() - clock
        record = SearchEpoch(epoch, loss_sum / max(seen, 1), correct / max(seen, 1), val_accuracy, genotype.describe(),
                             time.perf_counter() - tick, genotype.alphas, spent["weight"], spent["architecture"],
                             validation)
        history.epochs.append(record)
        history.seconds = time.perf_counter() - started
        if state_path is not None:
            _save(state_path, block, weight_opt, arch_opt, history, epoch + 1)
        if on_epoch is not None:
            on_epoch(record)
        if history.stop_reason == "budget":
            break
    return history


def architecture_step(model: nn.Module, block: RelaxedBlock, images: torch.Tensor, labels: torch.Tensor,
                      optimizer: torch.optim.Optimizer, config: SearchConfig, loss_fn: LossFunction | None = None,
                      rows: torch.Tensor | None = None) -> torch.Tensor:
    """One architecture step (Adam on the alphas and betas) on a search-validation batch; returns the
    loss. The block's weights are frozen for the pass, so the backward computes the gradients the
    architecture parameters need and no weight gradients (which the weight step would discard).
    ``loss_fn(logits, labels, rows, images)`` replaces the cross-entropy."""
    weights = [p for p in block.weight_parameters() if p.requires_grad]
    for parameter in weights:
        parameter.requires_grad_(False)
    try:
        optimizer.zero_grad(set_to_none=True)
        with autocast(images.device, config.amp):
            logits = model(images)
        loss = _loss(logits.float(), labels, loss_fn, rows, images)
        if config.beta_decay:
            loss = loss + config.beta_decay * torch.stack([torch.logsumexp(alpha, 0) for alpha in block.alphas]).mean()
        if torch.isfinite(loss):
            loss.backward()
        loss = distributed.average_gradients(list(block.architecture_parameters()), loss)
        if torch.isfinite(loss):
            optimizer.step()
    finally:
        for parameter in weights:
            parameter.requires_grad_(True)
    return loss.detach()


def weight_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, weights: list[nn.Parameter],
                optimizer: torch.optim.Optimizer, lr: float, config: SearchConfig, loss_fn: LossFunction | None = None,
                rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One weight step (SGD at ``lr``, gradients clipped to ``config.grad_clip``) on a search-training
    batch; returns the logits and the loss (the loss is not stepped on when it is not finite).
    ``loss_fn(logits, labels, rows, images)`` replaces the cross-entropy."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    with autocast(images.device, config.amp):
        logits = model(images)
    loss = _loss(logits.float(), labels, loss_fn, rows, images)
    if torch.isfinite(loss):
        loss.backward()
    loss = distributed.average_gradients(weights, loss)
    if torch.isfinite(loss):
        nn.utils.clip_grad_norm_(weights, config.grad_clip)
        optimizer.step()
    return logits, loss


def _loss(logits: torch.Tensor, labels: torch.Tensor, loss_fn: LossFunction | None, rows: torch.Tensor | None,
          images: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits, labels) if loss_fn is None else loss_fn(logits, labels, rows, images)


def _cycle(loader: BatchLoader, epoch: int):
    """A persistent iterator over ``loader`` that starts a new pass (new shuffle) when it runs out."""
    round_ = 0
    while True:
        loader.set_epoch(epoch * 1000 + round_)
        yield from loader
        round_ += 1


def _save(path: Path, block, weight_opt, arch_opt, history: SearchHistory, next_epoch: int) -> None:
    buffer = io.BytesIO()
    torch.save({"block": block.state_dict(), "weight_opt": weight_opt.state_dict(), "arch_opt": arch_opt.state_dict(),
                "history": [asdict(e) for e in history.epochs], "seconds": history.seconds,
                "next_epoch": next_epoch}, buffer)
    write_bytes_atomically(path, buffer.getvalue())


def _resume(path: Path, block, weight_opt, arch_opt, history: SearchHistory) -> int:
    from ..checkpoint import load_state

    def restore(state: dict) -> int:
        block.load_state_dict(state["block"])
        weight_opt.load_state_dict(state["weight_opt"])
        arch_opt.load_state_dict(state["arch_opt"])
        history.epochs = [SearchEpoch(**e) for e in state["history"]]
        history.seconds = state["seconds"]
        return state["next_epoch"]

    return load_state(path, restore)
