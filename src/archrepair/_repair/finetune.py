"""Deprecated path (kept for one release): whole-network fine-tuning is the ``network-gradient``
method, :class:`~archrepair._repair.methods.gradient.GradientRepair` at level ``network``."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..train import TrainConfig
from .methods.gradient import GradientConfig, GradientRepair
from .registry import default_train


@dataclass
class FineTuneConfig:
    train: TrainConfig = field(default_factory=default_train)


def FineTune(config: FineTuneConfig | None = None, log=None) -> GradientRepair:  # noqa: N802 (the old class name)
    """Whole-network fine-tuning (``network-gradient``)."""
    return GradientRepair(GradientConfig("network", (config or FineTuneConfig()).train), log)
