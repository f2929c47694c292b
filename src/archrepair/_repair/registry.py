"""Repair methods by name, so that ``repair --method``, ``compare`` and Python build them alike.

A method registers a builder with :func:`register_repairer` in the module that defines it; the
builder turns the shared :class:`RepairSettings` (what the command line sets) into the method with
its own configuration. Adding a method: one module under ``methods/`` plus its import in
``methods/__init__.py``.

Example:
    >>> @register_repairer("my-method", "what it does, in one line")  # doctest: +SKIP
    ... def my_method(settings: RepairSettings) -> Repairer:
    ...     return MyMethod(MyConfig(train=settings.train))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..budget import Budget
from .._registry import Registry
from .._localize import LOCALIZE_ROWS, LocalizeConfig
from .._search import SearchConfig, SearchSpace
from ..train import TrainConfig
from .base import Repairer
from .retain import RetainConfig


DEFAULT_METHOD = "auto"
"""The method ``repair`` runs and ``compare`` leads with when none is named."""


def default_train() -> TrainConfig:
    """The weight training every method shares: SGD 0.01, batch 64, cosine, 8 epochs, patience 3."""
    return TrainConfig(epochs=8, batch_size=64, lr=0.01, weight_decay=5e-4, schedule="cosine", patience=3)


@dataclass
class RepairSettings:
    """The settings a user gives every method at once (the command line's repair options):
    ``block`` to repair (``None``: localise with ``localize``), the search's ``space``, ``search``
    and discretisation ``rule`` (methods that search), ``train``, the weight training of every
    method (ArchRepair's fine-tuning; the gradient methods' training), and ``localize_rows``: the
    localisation runs on ``D_fail`` plus at most this many other fit rows (``None``: all);
    ``retain``: regression-aware training; ``layer``: the layer a layer-patching method changes
    (``arachne``; ``None``: its default)."""

    block: str | None = None
    localize: LocalizeConfig = field(default_factory=LocalizeConfig)
    space: SearchSpace = field(default_factory=SearchSpace)
    search: SearchConfig = field(default_factory=SearchConfig)
    rule: str = "edge"
    train: TrainConfig = field(default_factory=default_train)
    localize_rows: int | None = LOCALIZE_ROWS
    retain: RetainConfig = field(default_factory=RetainConfig)
    layer: str | None = None


@dataclass(frozen=True)
class MethodEntry:
    """A registered method: its builder, its one-line ``summary``, whether it ``searches`` a
    block's architecture (so that the search's settings mean something to it), its ``version``:
    bumped when its behaviour changes, so that a study's stored runs of the old one are not reused, and
    whether it ``spreads`` over the processes torchrun starts (:mod:`archrepair.distributed`; a method
    that does not runs in process 0 alone)."""

    name: str
    summary: str
    build: Callable[[RepairSettings], Repairer]
    searches: bool = False
    version: int = 1
    spreads: bool = True


_METHODS: Registry[MethodEntry] = Registry("repair method")


def register_repairer(name: str, summary: str, searches: bool = False, version: int = 1, spreads: bool = True):
    """Register the decorated builder ``(settings) -> Repairer`` as method ``name``; ``searches``:
    it uses :attr:`RepairSettings.space`, ``search`` and ``rule``; ``version``, ``spreads``: see
    :class:`MethodEntry`."""

    def decorate(build: Callable[[RepairSettings], Repairer]):
        _METHODS.add(name, MethodEntry(name, summary, build, searches, version, spreads))
        return build

    return decorate


def method_entry(name: str) -> MethodEntry:
    """The registered entry of method ``name``; an unknown name lists the valid ones."""
    return _METHODS.get(name)


def list_repairers() -> list[str]:
    """The registered method names, in registration order."""
    return _METHODS.names()


def searching_repairers() -> list[str]:
    """The registered methods that search a block's architecture."""
    return [entry.name for entry in _METHODS.values() if entry.searches]


def describe_repairers() -> str:
    """One line per method, ``name  summary``, for ``--help``."""
    width = max(len(name) for name in _METHODS.names())
    return "\n".join(f"  {entry.name:<{width}}  {entry.summary}" for entry in _METHODS.values())


def get_repairer(name: str, settings: RepairSettings | None = None, budget: Budget | None = None,
                 log: Callable[[str], None] | None = None) -> Repairer:
    """Build method ``name`` from ``settings`` with ``budget`` applied; an unknown name lists the valid ones."""
    from .._checks import argument

    argument("get_repairer", "name", name, str, "a registered method's name")
    argument("get_repairer", "settings", settings, RepairSettings, "a RepairSettings", optional=True)
    argument("get_repairer", "budget", budget, Budget, "a Budget (archrepair.Budget(seconds=..., epochs=...))",
             optional=True)
    repairer = _METHODS.get(name).build(settings or RepairSettings())
    repairer.name = name
    if log is not None:
        repairer.log = log
    repairer.apply_budget(budget or Budget())
    return repairer


__all__ = ["DEFAULT_METHOD", "MethodEntry", "RepairSettings", "describe_repairers", "get_repairer", "list_repairers",
           "method_entry", "register_repairer", "searching_repairers"]
