"""Normalisation-statistics shift: the block where activations stop matching what the model learned.

Every BatchNorm layer keeps running statistics of its input over the training data. On data of
that distribution a healthy network's activations match them; damaged weights inside a block
(noise, a bad quantisation, a partial fine-tune without recalibration) make that block's
normalisation layers see inputs whose per-channel mean and variance no longer match, and the
mismatch travels downstream. The block to blame is the one that *adds* the most mismatch: its
largest shift minus the largest shift of any normalisation layer that runs before it.

Shift of one layer, averaged over its ``C`` channels (``mu``, ``var``: observed moments of its
input over all positions and examples; ``mu_r``, ``var_r``: its running statistics)::

    mean_c |mu - mu_r| / sqrt(var_r + eps) + |log((var + eps) / (var_r + eps))|
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..hooks import run_with_hooks
from ..models import get_block
from ..errors import ArchRepairError
from .registry import Localizer, register_localizer


@dataclass(frozen=True)
class Normaliser:
    """A BatchNorm layer with running statistics: its module ``path`` and the ``block`` holding it
    (``None`` outside every block, for example a stem)."""

    path: str
    block: str | None


def find_normalisers(model: nn.Module, blocks: list[str], input_shape: tuple[int, ...]) -> list[Normaliser]:
    """BatchNorm layers with running statistics, in execution order (one zero batch
    ``(2, *input_shape)`` is run to learn it)."""
    names = {module: name for name, module in model.named_modules()}
    owners = {module: block for block in reversed(blocks) for module in get_block(model, block).modules()}
    order: list[nn.Module] = []
    candidates = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                  and m.track_running_stats and m.running_mean is not None]
    run_with_hooks(model, torch.zeros(2, *input_shape), [(m, lambda m, i, o: order.append(m)) for m in candidates])
    return [Normaliser(names[m], owners.get(m)) for m in dict.fromkeys(order)]  # first calls, in order


class MomentCounter:
    """Streaming per-channel count, sum and sum of squares (float64) of a layer's input
    ``(B, C, ...)``; attach with :meth:`hook` as a forward pre-hook."""

    def __init__(self) -> None:
        self.count = 0
        self.total: torch.Tensor | float = 0.0
        self.squares: torch.Tensor | float = 0.0

    def hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        values = inputs[0].detach().transpose(0, 1).flatten(1).double()  # (C, B * positions)
        self.count += values.shape[1]
        self.total = self.total + values.sum(1).cpu()
        self.squares = self.squares + values.square().sum(1).cpu()

    def shift(self, module: nn.modules.batchnorm._BatchNorm) -> float:
        """The layer's shift (module docstring) from the moments counted so far (``nan`` before any)."""
        if not self.count:
            return float("nan")
        mean = self.total / self.count
        variance = (self.squares / self.count - mean.square()).clamp_min(0)
        running_mean = module.running_mean.detach().double().cpu()
        running_var = module.running_var.detach().double().cpu() + module.eps
        moved = (mean - running_mean).abs() / running_var.sqrt()
        scaled = ((variance + module.eps) / running_var).log().abs()
        return float((moved + scaled).mean())


def block_shift(normalisers: list[Normaliser], shifts: list[float], blocks: list[str]) -> list[float]:
    """Per block (in ``blocks`` order): its largest layer shift minus the largest shift of the
    layers that ran before its first one (0 before the first); ``nan`` for a block without
    normalisation layers. ``shifts`` are the layers' shifts in ``normalisers`` order."""
    result = []
    for block in blocks:
        positions = [i for i, n in enumerate(normalisers) if n.block == block]
        if not positions:
            result.append(float("nan"))
            continue
        before = max(shifts[: positions[0]], default=0.0)
        result.append(max(shifts[i] for i in positions) - before)
    return result


@register_localizer
class ShiftLocalizer(Localizer):
    """Damage shifts every later block too, so this names the earliest block whose added shift is
    at least ``config.shift_ratio`` of the largest block's (finds blocks with damaged weights)."""

    name = "shift"
    needs_batchnorm = True

    def choose(self, report, config) -> tuple[str, str]:
        measured = [row for row in report.blocks if row.shift is not None]
        if not measured:
            raise ArchRepairError("method 'shift' needs the shifts of BatchNorm layers inside the blocks; none were measured")
        largest = max(row.shift for row in measured)
        chosen = next(row.block for row in measured if row.shift >= config.shift_ratio * largest)
        return chosen, (f"earliest block adding at least {config.shift_ratio:g} of the largest "
                        "normalisation-statistics shift")
