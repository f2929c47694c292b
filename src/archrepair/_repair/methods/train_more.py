"""The "train more" baselines: what a repair must beat to show that the failures helped.

The whole network (``train-more-network``), or the localised block alone (``train-more-block``, the
block ArchRepair's localisation picks, or ``--block``), trained like the repairs: the same data
pipeline (no augmentation), weight training, budget and choice between original and trained model,
on the training rows of ``D_repair`` **without** ``D_fail``. The only difference from
``network-gradient`` and ``archrepair-fixed-arch`` is the failures.

Example:
    >>> result = get_repairer("train-more-block").repair(task)   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from torch import nn

from ...budget import Deadline
from ..._localize import LOCALIZE_ROWS, LocalizeConfig
from ...models import get_block
from ..._search.surgery import trainable_only
from ...train import TrainConfig
from ..base import Candidate, ConfiguredRepairer
from ..registry import RepairSettings, default_train, register_repairer
from ..retain import RetainConfig
from ..task import RepairTask
from .archrepair import localised_block, localize_seconds
from .gradient import train_unit, unit_image_passes, unit_seconds


@dataclass
class TrainMoreConfig:
    """``level``: ``network`` or ``block``; ``train``: the weight training; ``block``: train this
    block (``None``: localise with ``localize`` on ``D_fail`` plus at most ``localize_rows`` rows);
    ``retain``: regression-aware training (:mod:`..retain`)."""

    level: str = "block"
    train: TrainConfig = field(default_factory=default_train)
    block: str | None = None
    localize: LocalizeConfig = field(default_factory=LocalizeConfig)
    localize_rows: int | None = LOCALIZE_ROWS
    retain: RetainConfig = field(default_factory=RetainConfig)


class TrainMore(ConfiguredRepairer):
    """Train the network or the localised block on ``D_repair``'s fit rows without ``D_fail``."""

    config_type = TrainMoreConfig

    def __init__(self, config: TrainMoreConfig | None = None, log=None) -> None:
        super().__init__(config, log)
        self.name = f"train-more-{self.config.level}"

    def estimate(self, task: RepairTask) -> dict[str, float]:
        """The localisation (block level, from timed probes), then timed SGD steps and a validation
        pass per epoch (:func:`unit_seconds`)."""
        seconds, block = 0.0, self.config.block
        if self.config.level == "block" and block is None:
            block, seconds = localize_seconds(task, self.config.localize, self.config.localize_rows)
        model, rows = copy.deepcopy(task.model), _rows(task)
        parameters, set_mode = self._trained(model, block)
        return {"repair": seconds + unit_seconds(task, model, parameters, set_mode, block, self.config.train, rows)}

    def train(self, task: RepairTask, deadline: Deadline) -> Candidate:
        started, details = time.perf_counter(), {}
        rows = _rows(task)
        model = copy.deepcopy(task.model)
        block = self.config.block
        if self.config.level == "block" and block is None:
            block, details["localization"] = localised_block(task, self.config.localize, self.config.localize_rows)
        parameters, set_mode = self._trained(model, block)
        history, view, status = train_unit(self, task, model, parameters, set_mode, block, self.config.train, rows,
                                           deadline, self.config.retain)
        details |= {"unit": block or "network", "rows": int(len(rows)), "history": [asdict(e) for e in history.history],
                    "stop_reason": history.stop_reason, "prefix_cache": status,
                    "image_passes": unit_image_passes(task, history, rows, status)}
        return Candidate(model, details, {"repair": time.perf_counter() - started}, block, view=view)

    def _trained(self, model: nn.Module, block: str | None):
        """What trains: every parameter (network level), or ``block``'s with the rest frozen."""
        if self.config.level == "network":
            return list(model.requires_grad_(True).parameters()), None
        module = get_block(model, block)
        return list(module.parameters()), trainable_only(model, module)


def _rows(task: RepairTask) -> np.ndarray:
    """The fit rows of ``task`` without ``D_fail`` (rows below ``num_failures``)."""
    return task.fit_others


@register_repairer("train-more-network", "baseline: the whole network trained on D_repair without D_fail")
def train_more_network(settings: RepairSettings) -> TrainMore:
    return TrainMore(TrainMoreConfig("network", settings.train, localize=settings.localize,
                                     localize_rows=settings.localize_rows, retain=settings.retain))


@register_repairer("train-more-block", "baseline: the localised block trained on D_repair without D_fail")
def train_more_block(settings: RepairSettings) -> TrainMore:
    return TrainMore(TrainMoreConfig("block", settings.train, settings.block, settings.localize, settings.localize_rows,
                                     settings.retain))
