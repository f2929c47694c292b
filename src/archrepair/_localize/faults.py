"""Fault injection for validating a localiser: damage one block's weights by a known amount.

Example:
    >>> scale, drop = noise_for_drop(model, "layer2", loader, drop=0.15, seed=0)  # doctest: +SKIP
    >>> damaged = add_weight_noise(model, "layer2", scale, seed=0)                  # doctest: +SKIP
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..data import BatchLoader
from ..models import get_block
from ..train import accuracy


def add_weight_noise(model: nn.Module, block: str, scale: float, seed: int) -> nn.Module:
    """A copy of ``model`` whose convolution weights inside ``block`` each get Gaussian noise of
    standard deviation ``scale`` times that weight's own standard deviation (seeded)."""
    damaged = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in get_block(damaged, block).modules():
            if isinstance(module, nn.Conv2d):
                noise = torch.randn(module.weight.shape, generator=generator).to(module.weight)
                module.weight += scale * module.weight.std() * noise
    return damaged


def noise_for_drop(model: nn.Module, block: str, loader: BatchLoader, drop: float = 0.15, seed: int = 0,
                   steps: int = 10, largest: float = 4.0) -> tuple[float, float]:
    """The noise scale (bisection over ``[0, largest]``, ``steps`` halvings) that lowers accuracy on
    ``loader`` by at least ``drop`` (a fraction) and as little above it as the bisection finds;
    returns ``(scale, measured drop)``."""
    base = accuracy(model, loader)
    low, high = 0.0, largest
    for _ in range(steps):
        middle = (low + high) / 2
        if base - accuracy(add_weight_noise(model, block, middle, seed), loader) < drop:
            low = middle
        else:
            high = middle
    return high, base - accuracy(add_weight_noise(model, block, high, seed), loader)
