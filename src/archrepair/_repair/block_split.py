"""Cutting a model in two at a block with torch.fx: the part before the block (run once per example
and cached) and the block with everything after it (run on every training step).

The cut is exact for any graph: the values the second part reads from the first (the block's
input, and for DenseNet-like or residual models the earlier tensors that later modules also read)
form the *frontier*; the second part takes them as inputs. Values that do not depend on the image
(buffers, constants) are recomputed in the second part rather than cached.

Example:
    >>> cut = split_at_block(model, "layer4")                  # doctest: +SKIP
    >>> frontier = cut.prefix(model)(images)                     # tuple of tensors, batch first
    >>> logits = cut.suffix(model)(*frontier)                    # == model(images)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import fx, nn

from ..models.blocks import block_module_paths


class CacheOff(Exception):
    """The block's inputs cannot be cached; the message says why (it goes into the report)."""


RANDOM_FUNCTIONS = {torch.rand, torch.randn, torch.randint, torch.rand_like, torch.randn_like, torch.randint_like,
                    torch.bernoulli, torch.multinomial, torch.normal, torch.randperm, torch.poisson}
DROPOUT_FUNCTIONS = {nn.functional.dropout, nn.functional.dropout1d, nn.functional.dropout2d, nn.functional.dropout3d,
                     nn.functional.alpha_dropout, nn.functional.feature_alpha_dropout, nn.functional.rrelu}
RANDOM_METHODS = {"bernoulli", "bernoulli_", "uniform_", "normal_", "random_", "exponential_", "geometric_",
                  "cauchy_", "log_normal_"}


class _BlockTracer(fx.Tracer):
    """torch.fx's tracer, with the block's modules kept whole (called, not traced into)."""

    def __init__(self, leaves: set[str]) -> None:
        super().__init__()
        self.leaves = leaves

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return qualified_name in self.leaves or super().is_leaf_module(module, qualified_name)


@dataclass
class BlockSplit:
    """A model's graph cut before ``block``: ``prefix_graph`` maps the image to the frontier values
    (named ``frontier``, in order), ``suffix_graph`` maps them to the logits; ``prefix_modules`` are
    the paths of the modules the first part calls or reads."""

    block: str
    prefix_graph: fx.Graph
    suffix_graph: fx.Graph
    frontier: list[str]
    prefix_modules: list[str]

    def prefix(self, model: nn.Module) -> fx.GraphModule:
        """``images -> tuple(frontier values)``, sharing ``model``'s modules."""
        return fx.GraphModule(model, self.prefix_graph)

    def suffix(self, model: nn.Module) -> fx.GraphModule:
        """``*frontier values -> logits``, sharing ``model``'s modules (so training it trains ``model``)."""
        return fx.GraphModule(model, self.suffix_graph)


@contextlib.contextmanager
def restored_modes(model: nn.Module) -> Iterator[None]:
    """Every module of ``model`` back in its own training or eval mode on leaving the block."""
    modes = {module: module.training for module in model.modules()}
    try:
        yield
    finally:
        for module, training in modes.items():
            module.train(training)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode inside the block, every module's own mode restored after."""
    with restored_modes(model):
        model.eval()
        yield


def split_at_block(model: nn.Module, block: str) -> BlockSplit:
    """Cut ``model`` before ``block`` (a module path or a slice such as ``features.3:5``); raise
    :class:`CacheOff` when the model cannot be traced, the block is never called, or the part before
    it draws random numbers. The model is traced in eval mode (its mode is restored)."""
    paths = set(block_module_paths(block))
    try:
        with eval_mode(model):
            graph = _BlockTracer(paths).trace(model)
    except Exception as error:  # fx raises many kinds (TraceError, TypeError, NotImplementedError...)
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CacheOff(f"torch.fx cannot trace {type(model).__name__} ({message[:120]})") from None
    nodes = list(graph.nodes)
    cut = next((i for i, node in enumerate(nodes) if node.op == "call_module" and node.target in paths), None)
    if cut is None:
        raise CacheOff(f"the traced model never calls {block}")
    inputs = [node for node in nodes if node.op == "placeholder"]
    if len(inputs) != 1:
        raise CacheOff(f"the model takes {len(inputs)} inputs; the cache handles one")
    before, after = nodes[:cut], set(nodes[cut:])
    for node in before:
        _refuse_random(node)
    per_example = set(inputs)
    for node in before:
        if any(argument in per_example for argument in node.all_input_nodes):
            per_example.add(node)
    frontier = [node for node in before if node in per_example and any(user in after for user in node.users)]
    prefix_graph = fx.Graph()
    copies: dict[fx.Node, fx.Node] = {}
    for node in before:
        copies[node] = prefix_graph.node_copy(node, lambda argument: copies[argument])
    prefix_graph.output(tuple(copies[node] for node in frontier))
    suffix_graph = fx.Graph()
    suffix_copies = {node: suffix_graph.placeholder(node.name) for node in frontier}

    def copy_into_suffix(node: fx.Node) -> fx.Node:
        if node not in suffix_copies:  # a value that does not depend on the image: recompute it
            for argument in node.all_input_nodes:
                copy_into_suffix(argument)
            suffix_copies[node] = suffix_graph.node_copy(node, lambda argument: suffix_copies[argument])
        return suffix_copies[node]

    for node in nodes[cut:]:
        copy_into_suffix(node)
    modules = sorted({str(node.target) for node in before if node.op in ("call_module", "get_attr")})
    return BlockSplit(block, prefix_graph, suffix_graph, [node.name for node in frontier], modules)


def _refuse_random(node: fx.Node) -> None:
    """Raise :class:`CacheOff` when ``node`` (before the block) draws random numbers."""
    name = getattr(node.target, "__name__", str(node.target))
    if node.op == "call_function" and node.target in RANDOM_FUNCTIONS:
        raise CacheOff(f"the part before the block draws random numbers ({name})")
    training = node.kwargs.get("training", node.args[2] if len(node.args) > 2 else True)
    if node.op == "call_function" and node.target in DROPOUT_FUNCTIONS and training:
        raise CacheOff(f"the part before the block draws random numbers ({name} in training mode)")
    if node.op == "call_method" and node.target in RANDOM_METHODS:
        raise CacheOff(f"the part before the block draws random numbers (.{name})")
