"""Repair methods by name, so that comparisons build them alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..errors import ArchRepairError
from .archrepair import ArchRepair, ArchRepairConfig
from .base import Repairer
from .finetune import FineTune, FineTuneConfig
from .gradient import GradientRepair


def _archrepair_fixed_architecture(config: ArchRepairConfig) -> Repairer:
    """ArchRepair with no architecture step: the block keeps its operations, only weights train."""
    search = replace(config.search, warmup_epochs=config.search.epochs)
    return _named(ArchRepair(replace(config, search=search)), "archrepair-fixed-arch")


def _archrepair_single_layer(config: ArchRepairConfig) -> Repairer:
    return _named(ArchRepair(replace(config, single_layer=True)), "archrepair-layer")


REPAIRERS: dict[str, Callable[[ArchRepairConfig], Repairer]] = {
    "archrepair": lambda config: ArchRepair(config),
    "archrepair-fixed-arch": _archrepair_fixed_architecture,
    "archrepair-layer": _archrepair_single_layer,
    "neuron-gradient": lambda config: GradientRepair("neuron", config.finetune),
    "layer-gradient": lambda config: GradientRepair("layer", config.finetune),
    "block-gradient": lambda config: GradientRepair("block", config.finetune),
    "network-gradient": lambda config: _named(FineTune(FineTuneConfig(config.finetune)), "network-gradient"),
}


def _named(repairer: Repairer, name: str) -> Repairer:
    repairer.name = name
    return repairer


def list_repairers() -> list[str]:
    return list(REPAIRERS)


def get_repairer(name: str, config: ArchRepairConfig | None = None) -> Repairer:
    """Build the repair method ``name``; every method takes its training settings from ``config``
    (the fine-tuning settings for the gradient methods), so they share one budget."""
    if name not in REPAIRERS:
        raise ArchRepairError(f"unknown repair method {name!r}; choose one of {', '.join(REPAIRERS)}")
    return REPAIRERS[name](config or ArchRepairConfig())


__all__ = ["REPAIRERS", "get_repairer", "list_repairers"]
