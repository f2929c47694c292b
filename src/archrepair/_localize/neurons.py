"""Which tensors of a block are its neurons.

A neuron is one output channel of a ``Conv2d`` (or one unit of a ``Linear``) inside a block. Its
activation is read where the layer's output has been normalised: the output of the BatchNorm that
directly follows the layer in execution order, or the layer's own output when none does. (After a
ReLU the spatial mean of a large map is almost always positive, so every neuron would count as
activated; the normalised pre-activation with threshold 0 says whether the unit is on for the
average position.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..hooks import run_with_hooks
from ..models import get_block

NORMALISERS = (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)


@dataclass(frozen=True)
class NeuronLayer:
    """A layer of neurons: ``layer`` is its module path, ``probe`` the path whose output is read,
    ``block`` the block name it belongs to, ``size`` its number of neurons."""

    block: str
    layer: str
    probe: str
    size: int


def find_neuron_layers(model: nn.Module, blocks: list[str], input_shape: tuple[int, ...]) -> list[NeuronLayer]:
    """Neuron layers of each block, in block order and execution order within a block.

    Runs one forward pass of a zero batch ``(2, *input_shape)`` to learn the execution order.
    """
    names = {module: name for name, module in model.named_modules()}
    owners: dict[nn.Module, str] = {}
    for block in blocks:
        for module in get_block(model, block).modules():
            owners.setdefault(module, block)
    order: list[nn.Module] = []
    leaves = [m for m in owners if not list(m.children())]
    run_with_hooks(model, torch.zeros(2, *input_shape), [(m, lambda m, i, o: order.append(m)) for m in leaves])
    layers: list[NeuronLayer] = []
    seen: set[nn.Module] = set()
    for position, module in enumerate(order):
        if not isinstance(module, (nn.Conv2d, nn.Linear)) or module in seen:
            continue
        seen.add(module)
        size = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
        probe = module
        following = order[position + 1] if position + 1 < len(order) else None
        if isinstance(following, NORMALISERS) and owners.get(following) == owners[module]:
            probe = following
        layers.append(NeuronLayer(owners[module], names[module], names[probe], size))
    return sorted(layers, key=lambda layer: blocks.index(layer.block))  # stable: keeps execution order
