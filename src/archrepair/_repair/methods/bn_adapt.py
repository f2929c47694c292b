"""BatchNorm adaptation: the running statistics of every BatchNorm layer re-estimated on the target
data, no weight changed (Schneider et al., NeurIPS 2020; a cheap reference for distribution shift).

``bn-adapt`` estimates them on rows of ``D_repair``: in the corruption scenario its corrupted rows
(``D_fail``, drawn from the shifted test data), else all its fit rows. ``bn-adapt-pool`` estimates them
on the failure pool's unlabelled test images (what the hold-out and any validation part leave): more
target data than the other methods get, hence its own name; it needs the held-out protocol.

Example:
    >>> result = get_repairer("bn-adapt").repair(task)   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn

from ...budget import Deadline
from ...data import BatchLoader
from ...errors import ArchRepairError
from ..base import Candidate, Repairer, image_passes
from ..estimate import pass_seconds
from ..registry import RepairSettings, register_repairer
from ..task import RepairTask


def adapt_batchnorm(model: nn.Module, batches, deadline: Deadline | None = None) -> int:
    """Re-estimate the running mean and variance of every BatchNorm layer of ``model`` (in place) as
    the plain average over ``batches`` of normalised images (momentum ``None``); every other module
    stays in eval mode and no parameter changes. Returns the number of images seen."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ArchRepairError(f"{type(model).__name__} has no BatchNorm layer to adapt")
    momenta = [m.momentum for m in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    seen = 0
    try:
        with torch.no_grad():
            for images, *_ in batches:
                model(images)
                seen += len(images)
                if deadline is not None and deadline.expired():
                    break
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.eval()
    return seen


class BatchNormAdaptation(Repairer):
    """Re-estimate the BatchNorm statistics on the target data; see the module docstring."""

    name = "bn-adapt"

    def __init__(self, pool: bool = False, log=None) -> None:
        super().__init__(log)
        self.pool = pool

    def set_phase_epochs(self, phase: str, epochs: int) -> None:
        """One pass over the target rows is all it does; an epoch budget changes nothing."""

    def check(self, model, input_shape, split) -> None:
        """The pool variant needs the heldout protocol."""
        if self.pool and split.protocol != "heldout":
            raise ArchRepairError("bn-adapt-pool needs the heldout protocol: its pool is what the test hold-out leaves")

    def estimate(self, task: RepairTask) -> dict[str, float]:
        """One evaluation pass over the target rows (the pool: about as many as the fit rows or more)."""
        rows = len(task.data.y_test) // 2 if self.pool else len(task.fit_indices)
        return {"adapt": pass_seconds(task.model, task, task.fit_indices) * rows / max(len(task.fit_indices), 1)}

    def train(self, task: RepairTask, deadline: Deadline) -> Candidate:
        started = time.perf_counter()
        model = copy.deepcopy(task.model)
        if self.pool:
            split = task.split
            self.check(task.model, task.input_shape, split)
            pool = np.setdiff1d(np.arange(len(task.data.y_test)), split.holdout_indices + split.validation_indices)
            batches = BatchLoader(task.data.x_test, task.data.y_test, task.record.mean, task.record.std, indices=pool,
                                  batch_size=256, device=task.device, channels_last=task.channels_last)
            source = "the failure pool's test images (unlabelled)"
        else:
            rows = task.fit_failures if task.config.corruption is not None else task.fit_indices
            batches = task.loader(rows)
            source = "D_repair's corrupted rows (D_fail)" if task.config.corruption is not None else "D_repair's fit rows"
        seen = adapt_batchnorm(model, batches, deadline)
        self.log(f"{self.name}: BatchNorm statistics re-estimated on {seen} images of {source}")
        details = {"images": seen, "source": source, "image_passes": image_passes(task, seen),
                   "stop_reason": "budget" if deadline.expired() else "done", "prefix_cache": "off: no training"}
        return Candidate(model, details, {"adapt": time.perf_counter() - started})


@register_repairer("bn-adapt", "baseline: re-estimate the BatchNorm statistics on D_repair (its corrupted rows under "
                               "a shift)", spreads=False)
def bn_adapt(settings: RepairSettings) -> BatchNormAdaptation:
    return BatchNormAdaptation()


@register_repairer("bn-adapt-pool", "baseline: re-estimate the BatchNorm statistics on the failure pool's unlabelled "
                                    "test images (more target data)", spreads=False)
def bn_adapt_pool(settings: RepairSettings) -> BatchNormAdaptation:
    return BatchNormAdaptation(pool=True)
