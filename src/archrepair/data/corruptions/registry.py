"""Corruptions by name: each registers its function, its severity constants per preset and
whether it draws random numbers, in one place (``@register_corruption`` on its function).

Constants are Hendrycks and Dietterich's, severities 1..5 (pixel values in [0, 1]): ``cifar``
(32x32) from ``make_cifar_c.py``, ``tiny_imagenet`` (64x64) from ``make_tinyimagenet_c.py``
(github.com/hendrycks/robustness, ImageNet-C/create_c/). A corruption function takes images
``(N, H, W, 3)`` uint8, the severity's constant and a numpy ``Generator``, and returns the
corrupted images as floats in 0..255. Adding one: a decorated function in ``functions.py`` (or a
module imported there); the registration order is the paper's order and part of each seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..._registry import Registry

Function = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Corruption:
    """One corruption: ``name``, the paper's ``abbreviation``, its ``function``, ``constants``
    ``{preset: [severity 1..5]}`` and ``deterministic`` (no random numbers drawn)."""

    name: str
    abbreviation: str
    function: Function
    constants: dict[str, list]
    deterministic: bool


_CORRUPTIONS: Registry[Corruption] = Registry("corruption")


def register_corruption(abbreviation: str, deterministic: bool, cifar: list, tiny_imagenet: list):
    """Register the decorated function under its own name with its constants per preset."""

    def decorate(function: Function) -> Function:
        name = function.__name__
        for preset, values in (("cifar", cifar), ("tiny-imagenet", tiny_imagenet)):
            if len(values) != 5:
                raise ValueError(f"corruption {name!r} needs 5 severities for {preset}, got {len(values)}")
        _CORRUPTIONS.add(name, Corruption(name, abbreviation, function, {"cifar": cifar, "tiny-imagenet": tiny_imagenet},
                                           deterministic))
        return function

    return decorate


def list_corruptions() -> list[str]:
    """Registered names, in registration (the paper's) order."""
    return _CORRUPTIONS.names()


def get_corruption(name: str) -> Corruption:
    return _CORRUPTIONS.get(name)
