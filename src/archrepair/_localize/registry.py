"""Localisers by name: what picks the block to repair from the block table.

Every localiser reads the same statistics, collected in one streaming pass (:mod:`.collect`):
spectra, failure gradients and, where the model has BatchNorm layers, normalisation-statistics
shifts; :func:`~archrepair._localize.localize.summarise` turns them into the block table, and the
localiser named by ``LocalizeConfig.method`` chooses from it. Adding one: a
:class:`Localizer` subclass decorated with ``@register_localizer`` in its own module, imported by
``localize/__init__.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from .._registry import Registry

if TYPE_CHECKING:
    from .localize import LocalizationReport, LocalizeConfig


class Localizer(ABC):
    """``choose(report, config)`` returns ``(block, criterion)``: the block to repair and a
    sentence saying why. ``needs_batchnorm``: refuse models without BatchNorm layers in their
    blocks; ``uses_level``: the choice depends on ``config.level`` (checked against the neuron count)."""

    name: str = ""
    needs_batchnorm: bool = False
    uses_level: bool = False

    @abstractmethod
    def choose(self, report: LocalizationReport, config: LocalizeConfig) -> tuple[str, str]:
        """The block to repair among ``report.blocks`` and the criterion, in words."""


_LOCALIZERS: Registry[Localizer] = Registry("localisation method")


def register_localizer(cls: type[Localizer]) -> type[Localizer]:
    """Class decorator: register an instance of ``cls`` under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"localizer {cls.__name__} has no name")
    _LOCALIZERS.add(cls.name, cls())
    return cls


def list_localizers() -> list[str]:
    return _LOCALIZERS.names()


def get_localizer(name: str) -> Localizer:
    return _LOCALIZERS.get(name)
