"""The original block as a DAG: nodes (tensors), edges (original modules), node activations;
the registry of relaxation rules that turn each kind of residual unit into that DAG (the rules
themselves are in :mod:`.rules`).

Node 0 is the block's input; node ``j`` (1..K) is ``act_j(sum of its incoming edges)``; the last
node is the block's output. This is the shape of the search space (paper Eq. 7): the relaxed block
adds candidate operations on every pair ``i < j``, and the original block is the special case
where each original edge keeps its module and every other edge is ``none``.

Supported block kinds: units a registered rule recognises (ResNet basic and bottleneck units,
ours and torchvision's; MBConv units; any residual unit whose forward traces to one sum of two
module chains) and stages of them, and any sequential block (VGG segments, small CNN blocks,
DenseNet bottlenecks' ``layers``, slices).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ArchRepairError

ACTIVATIONS = {"identity": nn.Identity, "relu": nn.ReLU, "silu": nn.SiLU}
PASSIVE = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Hardswish, nn.Dropout, nn.Identity)
SPLITTERS = (nn.Conv2d, nn.Linear, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)


@dataclass
class BlockGraph:
    """``activations[j - 1]`` names node ``j``'s activation; ``edges[(i, j)]`` is an original module;
    ``shapes[j]`` is node ``j``'s ``(C, H, W)`` (filled by :func:`trace_shapes`)."""

    activations: list[str]
    edges: dict[tuple[int, int], nn.Module]
    shapes: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def num_nodes(self) -> int:
        return len(self.activations) + 1

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All node values for input ``x`` (runs the original modules)."""
        nodes = [x]
        for j in range(1, self.num_nodes):
            total = sum(module(nodes[i]) for (i, k), module in self.edges.items() if k == j)
            nodes.append(ACTIVATIONS[self.activations[j - 1]]()(total))
        return nodes


@dataclass(frozen=True)
class RelaxationRule:
    """How one kind of residual unit becomes nodes and edges: ``matches(module)`` recognises a
    unit, ``add(graph, unit)`` appends its edges (original modules) and node activations."""

    name: str
    matches: Callable[[nn.Module], bool]
    add: Callable[["BlockGraph", nn.Module], None]


_RULES: list[RelaxationRule] = []


def register_relaxation_rule(name: str, matches: Callable[[nn.Module], bool]):
    """Register the decorated ``add(graph, unit)`` for units that ``matches``; rules are tried in
    registration order, so a specific rule registers before a general one."""

    def decorate(add: Callable[[BlockGraph, nn.Module], None]):
        if any(rule.name == name for rule in _RULES):
            raise ValueError(f"relaxation rule {name!r} is registered twice")
        _RULES.append(RelaxationRule(name, matches, add))
        return add

    return decorate


def list_relaxation_rules() -> list[str]:
    return [rule.name for rule in _RULES]


def rule_for(module: nn.Module) -> RelaxationRule | None:
    """The first registered rule that recognises ``module`` as a unit, or ``None``."""
    return next((rule for rule in _RULES if rule.matches(module)), None)


def block_graph(block: nn.Module, example: torch.Tensor) -> BlockGraph:
    """The DAG of ``block``, with node shapes traced from ``example`` ``(N, C, H, W)``: a unit a
    relaxation rule recognises, a sequence of such units, any ``nn.Sequential`` of layers, or a
    single layer with parameters."""
    if example.dim() != 4:
        raise ArchRepairError(
            f"a block of type {type(block).__name__} takes inputs of shape {tuple(example.shape[1:])}; the search "
            "relaxes convolutional blocks, whose inputs are (C, H, W) feature maps: name a convolutional block"
        )
    graph = BlockGraph([], {})
    units = list(block.children()) if isinstance(block, nn.Sequential) else [block]
    rules = [rule_for(unit) for unit in units]
    if units and all(rules):
        for unit, rule in zip(units, rules):
            rule.add(graph, unit)
    elif isinstance(block, nn.Sequential):
        add_sequence(graph, list(block.children()))
    elif not list(block.children()) and any(True for _ in block.parameters()):
        add_sequence(graph, [block])  # a single layer (ArchRepair at layer level)
    else:
        raise ArchRepairError(
            f"cannot relax a block of type {type(block).__name__}: supported are residual units ("
            f"{', '.join(list_relaxation_rules())}), stages made of them, and nn.Sequential blocks; name another "
            "block with --block, or register a relaxation rule for it"
        )
    if not graph.edges:
        raise ArchRepairError("the block has no operation layer to relax")
    trace_shapes(graph, example)
    return graph


def trace_shapes(graph: BlockGraph, example: torch.Tensor) -> None:
    was = [m.training for m in graph.edges.values()]
    for module in graph.edges.values():
        module.eval()
    with torch.no_grad():
        nodes = graph.forward(example[:2])
    for module, mode in zip(graph.edges.values(), was):
        module.train(mode)
    graph.shapes = [tuple(node.shape[1:]) for node in nodes]
    if any(len(shape) != 3 for shape in graph.shapes):
        raise ArchRepairError("the block's layers do not all produce (C, H, W) feature maps (a flatten or a linear "
                              "layer inside?); name a convolutional block")


def add_sequence(graph: BlockGraph, layers: list[nn.Module]) -> None:
    """Group a layer list into operation layers, one edge each, node activation identity.

    Post-activation sequences (conv, BN, ReLU, ...) split before each convolution or pooling;
    pre-activation ones (BN, ReLU, conv, ...) split after each. Any other module (squeeze-excitation,
    a residual unit) is an operation layer of its own.
    """
    pre_activation = bool(layers) and isinstance(layers[0], PASSIVE) and any(isinstance(l, SPLITTERS) for l in layers)
    groups: list[list[nn.Module]] = []
    current: list[nn.Module] = []
    for layer in layers:
        if isinstance(layer, PASSIVE):
            current.append(layer)
            continue
        if pre_activation:
            current.append(layer)
            groups.append(current)
            current = []
        else:
            if current and any(not isinstance(l, PASSIVE) for l in current):
                groups.append(current)
                current = []
            current.append(layer)
    if current:
        if groups and all(isinstance(l, PASSIVE) for l in current):
            groups[-1].extend(current)
        else:
            groups.append(current)
    for group in groups:
        node = len(graph.activations) + 1
        graph.edges[(node - 1, node)] = group[0] if len(group) == 1 else nn.Sequential(*group)
        graph.activations.append("identity")


from . import rules  # noqa: E402,F401  (registers the built-in relaxation rules)
