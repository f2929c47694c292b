"""Knowing a repair's cost before paying it: time a few steps of each phase on the actual model,
block and data, and scale by the steps the phase would take (early stopping off).

Each method's :meth:`~archrepair._repair.base.Repairer.estimate` uses these helpers; ``repair
--dry-run`` prints the result, and every repair records it in its report beside what it took.
"""

from __future__ import annotations

import copy
import resource
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..device import autocast
from ..evaluate import predict
from .block_inputs import BlockView, BoundBlock
from .block_split import eval_mode
from .task import RepairTask

PROBE_ROWS = 512  # rows of a validation pass that are timed and scaled up


def seconds_per_call(step: Callable[[], object], calls: int = 3) -> float:
    """Median seconds of ``calls`` calls of ``step`` after one warm-up call (which allocates)."""
    step()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def pass_seconds(model: nn.Module, task: RepairTask, rows: np.ndarray, view: BlockView | None = None) -> float:
    """Seconds of one evaluation pass of ``model`` over ``rows`` (a probe of at most PROBE_ROWS,
    scaled); with ``view`` (on), ``model`` is bound to it and takes cached rows."""
    if not len(rows):
        return 0.0
    probe = rows[:PROBE_ROWS]
    if view is None or view.status != "on":
        seconds = seconds_per_call(lambda: predict(model, task.loader(probe), task.amp), calls=1)
    else:
        batches = [view.pack_images(images) for images, _ in task.loader(probe)]

        def run() -> None:
            with eval_mode(model), torch.no_grad(), autocast(task.device, task.amp):
                for batch in batches:
                    model(batch)

        seconds = seconds_per_call(run, calls=1)
    return seconds * len(rows) / len(probe)


def step_batch(loader, bound: BoundBlock, view: BlockView | None) -> tuple[tuple[torch.Tensor, torch.Tensor], float]:
    """One training batch of ``loader`` as ``bound.model`` takes it (cached rows when the view is
    on), and the seconds to make one (a cached batch is a row gather: counted as 0)."""
    images, labels = next(iter(loader))
    if bound.status != "on":
        return (images, labels), batch_seconds(loader)
    return (view.pack_images(images), labels), 0.0


def cache_seconds(task: RepairTask, view: BlockView | None) -> float:
    """Seconds to build ``view``'s cache (one pass of the part before the block over ``D_repair``,
    timed on a probe of at most PROBE_ROWS rows and scaled), 0 when there is none, or it is off or
    built."""
    if view is None or view.status != "on" or view.inputs is not None:
        return 0.0
    rows = len(task.repair.y)
    probe = [images for images, _ in task.loader(np.arange(min(rows, PROBE_ROWS)))]
    seconds = seconds_per_call(lambda: [view.pack_images(images) for images in probe], calls=1)
    return seconds * rows / sum(len(images) for images in probe)


def training_step(model: nn.Module, parameters: list[nn.Parameter], batch, amp: bool) -> Callable[[], None]:
    """One SGD step of ``parameters`` on ``batch`` (images, labels), as :func:`archrepair.train.fit` takes it."""
    images, labels = batch
    if not parameters:  # nothing to train (a block of parameter-free operations): a forward pass
        return lambda: model(images)
    optimizer = torch.optim.SGD(parameters, lr=1e-6, momentum=0.9)

    def step() -> None:
        with autocast(images.device, amp):
            loss = nn.functional.cross_entropy(model(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def network_step_seconds(task: RepairTask, batch_size: int) -> tuple[float, int]:
    """Seconds of one SGD step of the whole network (a copy of ``task.model``) on a batch of
    ``batch_size`` fit rows, making the batch included, and the steps of one epoch over the fit rows."""
    model = copy.deepcopy(task.model).train()
    parameters = list(model.requires_grad_(True).parameters())
    loader = task.loader(task.fit_indices, batch_size, shuffle=True)
    step = seconds_per_call(training_step(model, parameters, next(iter(loader)), task.amp)) + batch_seconds(loader)
    return step, len(loader)


def batch_step_seconds(model: nn.Module, loader, amp: bool) -> float:
    """Seconds of one training step of ``model`` on a batch of ``loader``, making the batch included
    (for loaders that transform their batches: augmentation views, a search for worst variants)."""
    iterator = iter(loader)
    batch = next(iterator)  # warm-up
    started = time.perf_counter()
    batch = next(iterator, batch)
    making = time.perf_counter() - started
    parameters = [p for p in model.parameters() if p.requires_grad]
    return making + seconds_per_call(training_step(model, parameters, batch[:2], amp))


def batch_seconds(loader, batches: int = 3) -> float:
    """Seconds to produce one batch of ``loader`` (gather, normalise, move), the part of a training
    step that timing one resident batch leaves out."""
    iterator = iter(loader)
    next(iterator, None)
    started, made = time.perf_counter(), 0
    for _ in range(batches):
        if next(iterator, None) is None:
            break
        made += 1
    return (time.perf_counter() - started) / max(made, 1)


def peak_memory_mb() -> float:
    """The process's peak resident set so far, in MB (CUDA: the peak allocated memory)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
