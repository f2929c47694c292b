"""The built-in relaxation rules: how each kind of residual unit becomes edges and nodes.

A new model family whose blocks none of these recognises adds one rule: a function
``add(graph, unit)`` decorated with ``@register_relaxation_rule(name, matches)``, in a module that
is imported before the search runs (here, or the user's own module).

- ``resnet-unit``: ResNet basic and bottleneck units, ours and torchvision's (``conv1, bn1, ...``
  with a ``shortcut`` or ``downsample``).
- ``mbconv``: EfficientNet's MBConv units (``layers`` and an identity ``residual``).
- ``traced-residual``: any other unit whose ``forward`` traces (torch.fx) to
  ``act(main(x) + shortcut(x))``, each branch a chain of modules (or ``x`` itself), whatever its
  attributes are called.
"""

from __future__ import annotations

import operator

import torch
from torch import fx, nn

from .graph import BlockGraph, add_sequence, register_relaxation_rule

ADDS = (operator.add, operator.iadd, torch.add)
RELUS = (torch.relu, nn.functional.relu, torch.relu_)


def _is_resnet_unit(module: nn.Module) -> bool:
    return {"conv1", "bn1", "conv2", "bn2"} <= {name for name, _ in module.named_children()}


@register_relaxation_rule("resnet-unit", _is_resnet_unit)
def add_resnet_unit(graph: BlockGraph, unit: nn.Module) -> None:
    """conv-BN edges between ReLU nodes, and the shortcut from the unit's input to its output."""
    start = len(graph.activations)
    convs = [name for name in ("conv1", "conv2", "conv3") if hasattr(unit, name)]
    for index, conv in enumerate(convs, start=1):
        node = start + index
        graph.edges[(node - 1, node)] = nn.Sequential(getattr(unit, conv), getattr(unit, f"bn{index}"))
        graph.activations.append("relu")
    shortcut = getattr(unit, "shortcut", None) or getattr(unit, "downsample", None)
    graph.edges[(start, start + len(convs))] = shortcut if shortcut is not None else nn.Identity()


def _is_mbconv(module: nn.Module) -> bool:
    return hasattr(module, "residual") and isinstance(getattr(module, "layers", None), nn.Sequential)


@register_relaxation_rule("mbconv", _is_mbconv)
def add_mbconv(graph: BlockGraph, unit: nn.Module) -> None:
    """The unit's layers as a sequence, and an identity edge across it when it has a residual."""
    start = len(graph.activations)
    add_sequence(graph, list(unit.layers.children()))
    if unit.residual:
        graph.edges[(start, len(graph.activations))] = nn.Identity()


def traced_residual(unit: nn.Module) -> tuple[list[nn.Module], list[nn.Module], str] | None:
    """``(main branch, shortcut branch, activation after the sum)`` when ``unit``'s forward is
    ``act(main(x) + shortcut(x))`` with each branch a chain of its submodules (functional ReLUs
    become ``nn.ReLU``; an empty shortcut is the identity), else ``None``."""
    if isinstance(unit, nn.Sequential) or not any(True for _ in unit.children()):
        return None
    try:
        graph = fx.symbolic_trace(unit).graph
    except Exception:  # data-dependent control flow, unsupported operations: not this rule's unit
        return None
    nodes = list(graph.nodes)
    inputs = [node for node in nodes if node.op == "placeholder"]
    adds = [node for node in nodes if node.op == "call_function" and node.target in ADDS
            or node.op == "call_method" and node.target in ("add", "add_", "__add__")]
    if len(inputs) != 1 or len(adds) != 1 or len(adds[0].args) < 2:
        return None
    branches = [_chain(unit, argument, inputs[0]) for argument in adds[0].args[:2]]
    if any(branch is None for branch in branches):
        return None
    main, shortcut = sorted(branches, key=lambda branch: -sum(isinstance(m, nn.Conv2d) for m in branch))
    if not any(isinstance(m, nn.Conv2d) for m in main):
        return None
    users = list(adds[0].users)
    if len(users) != 1:
        return None
    after = users[0]
    if after.op == "output":
        return main, shortcut, "identity"
    if _as_relu(unit, after) is not None and len(after.users) == 1 and next(iter(after.users)).op == "output":
        return main, shortcut, "relu"
    return None


def _chain(unit: nn.Module, node: fx.Node, start: fx.Node) -> list[nn.Module] | None:
    """The modules from ``start`` to ``node`` when they form a single chain, in forward order."""
    modules: list[nn.Module] = []
    while node is not start:
        if not isinstance(node, fx.Node) or len(node.all_input_nodes) != 1:
            return None
        module = unit.get_submodule(node.target) if node.op == "call_module" else _as_relu(unit, node)
        if module is None:
            return None
        modules.append(module)
        node = node.all_input_nodes[0]
    return modules[::-1]


def _as_relu(unit: nn.Module, node: fx.Node) -> nn.Module | None:
    if node.op == "call_module" and isinstance(unit.get_submodule(node.target), nn.ReLU):
        return unit.get_submodule(node.target)
    if node.op == "call_function" and node.target in RELUS or node.op == "call_method" and node.target in ("relu", "relu_"):
        return nn.ReLU()
    return None


class ParallelSum(nn.Module):
    """The sum of several branches on one input (a one-layer main branch beside its shortcut)."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.branches[0](x)
        for branch in self.branches[1:]:
            total = total + branch(x)
        return total


@register_relaxation_rule("traced-residual", lambda module: traced_residual(module) is not None)
def add_traced_residual(graph: BlockGraph, unit: nn.Module) -> None:
    """The main branch as a sequence of operation layers, the shortcut across it, and the
    activation after the sum on the unit's output node."""
    main, shortcut, activation = traced_residual(unit)
    start = len(graph.activations)
    add_sequence(graph, main)
    end = len(graph.activations)
    across = nn.Sequential(*shortcut) if shortcut else nn.Identity()
    graph.edges[(start, end)] = ParallelSum(graph.edges[(start, end)], across) if (start, end) in graph.edges else across
    graph.activations[end - 1] = activation
