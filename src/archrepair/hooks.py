"""One forward pass with temporary hooks, used to learn shapes, execution order and block inputs."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn


def run_with_hooks(
    model: nn.Module,
    inputs: torch.Tensor,
    forward_hooks: Iterable[tuple[nn.Module, Callable]] = (),
    pre_hooks: Iterable[tuple[nn.Module, Callable]] = (),
) -> torch.Tensor:
    """Run ``model`` once in eval mode without gradients, with the given hooks attached; the hooks
    are removed and the model's training mode restored afterwards, even on error."""
    handles = [module.register_forward_hook(hook) for module, hook in forward_hooks]
    handles += [module.register_forward_pre_hook(hook) for module, hook in pre_hooks]
    was_training = model.training
    try:
        with torch.no_grad():
            return model.eval()(inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
