"""Repair methods by name, so that comparisons build them alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..budget import Budget
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


def get_repairer(name: str, config: ArchRepairConfig | None = None, budget: Budget | None = None) -> Repairer:
    """Build the repair method ``name``; every method takes its training settings from ``config``
    (the fine-tuning settings for the gradient methods) and honours ``budget``, so they share one."""
    if name not in REPAIRERS:
        raise ArchRepairError(f"unknown repair method {name!r}; choose one of {', '.join(REPAIRERS)}")
    budget = budget or Budget()
    repairer = REPAIRERS[name](with_epoch_budget(config or ArchRepairConfig(), budget, name.startswith("archrepair")))
    repairer.budget = budget
    return repairer


def with_epoch_budget(config: ArchRepairConfig, budget: Budget, searches: bool) -> ArchRepairConfig:
    """``config`` with ``budget.epochs`` passes over the fit data: all of them for fine-tuning, or,
    for a method that ``searches``, half (rounded down) for the search and the rest for fine-tuning."""
    if budget.epochs is None:
        return config
    if not searches:
        return replace(config, finetune=replace(config.finetune, epochs=budget.epochs))
    if budget.epochs < 2:
        raise ArchRepairError("ArchRepair needs an epoch budget of at least 2 (search and fine-tuning)")
    search_epochs = budget.epochs // 2
    search = replace(config.search, epochs=search_epochs, warmup_epochs=min(config.search.warmup_epochs, search_epochs - 1))
    return replace(config, search=search, finetune=replace(config.finetune, epochs=budget.epochs - search_epochs))


__all__ = ["REPAIRERS", "get_repairer", "list_repairers"]
