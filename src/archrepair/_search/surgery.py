"""Working on one block inside a model: its input, freezing the rest, swapping it."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from ..checkpoint import register_block_builder
from ..errors import ArchRepairError
from ..hooks import run_with_hooks
from ..models import get_block, replace_block
from .discrete import DiscreteBlock, Genotype
from .graph import block_graph


def block_input(model: nn.Module, block: str, images: torch.Tensor) -> torch.Tensor:
    """The tensor that reaches ``block`` when ``model`` (eval mode) runs on ``images``."""
    target = get_block(model, block)
    first = target[0] if ":" in block.rpartition(".")[2] else target
    captured: list[torch.Tensor] = []
    run_with_hooks(model, images, pre_hooks=[(first, lambda module, inputs: captured.append(inputs[0].detach()))])
    return captured[0]


def check_relaxable(model: nn.Module, block: str, input_shape: tuple[int, int, int]) -> None:
    """Raise a clear error, before any work, when ``block`` is not a block of ``model`` that the
    search can relax (``input_shape``: ``(C, H, W)`` of the model's input)."""
    traced = copy.deepcopy(model).cpu().eval()
    block_graph(get_block(traced, block), block_input(traced, block, torch.zeros(2, *input_shape)))


def trainable_only(model: nn.Module, part: nn.Module) -> Callable[[nn.Module], None]:
    """Freeze every parameter of ``model`` outside ``part``; return a function that puts ``model``
    in eval mode (frozen BatchNorm statistics) and ``part`` alone in training mode."""
    inside = {id(p) for p in part.parameters()}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in inside)

    def set_train_mode(whole: nn.Module) -> None:
        whole.eval()
        part.train()

    return set_train_mode


def with_discrete_block(base: nn.Module, block: str, genotype: Genotype, example: torch.Tensor) -> nn.Module:
    """A copy of ``base`` whose ``block`` is the discrete block of ``genotype`` (original edges copied
    from ``base``); ``example`` is a batch of model inputs used to trace the block's shapes."""
    model = copy.deepcopy(base)
    graph = block_graph(get_block(model, block), block_input(model, block, example))
    replace_block(model, block, DiscreteBlock(genotype, graph.edges))
    return model


@register_block_builder("genotype")
def _build_searched_block(model: nn.Module, entry: dict, example: torch.Tensor) -> nn.Module:
    """A saved repair's searched block (``entry``: ``{"block", "genotype", ...}``) put into ``model``."""
    if not isinstance(entry.get("genotype"), dict) or not isinstance(entry.get("block"), str):
        raise ArchRepairError("the record's repair entry lacks its block or genotype")
    return with_discrete_block(model, entry["block"], Genotype.from_json(entry["genotype"]), example)
