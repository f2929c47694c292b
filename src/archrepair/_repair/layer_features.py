"""What a layer-patching method needs of one linear layer: its inputs on chosen rows of ``D_repair``
and a function from those inputs to the model's logits with the layer's current weights.

From the shared block-input cache (:meth:`RepairTask.block_view` at the layer): the part of the
network before the layer ran once per row, so a forward pass is the layer and what follows it.
When the cache is off (an untraceable model, ``--no-prefix-cache``), a forward hook captures the
layer's inputs instead, which is exact only when the layer's output is the model's output; another
layer is then refused with the cache's reason.

Example:
    >>> features = LayerFeatures(task, model, "fc", rows)   # doctest: +SKIP
    >>> logits = features.logits()                           # (len(rows), classes)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import ArchRepairError
from ..hooks import run_with_hooks
from .task import RepairTask


def last_linear(model: nn.Module) -> str:
    """The path of the last ``nn.Linear`` of ``model`` (its classifier in the zoo and torchvision)."""
    paths = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not paths:
        raise ArchRepairError(f"{type(model).__name__} has no nn.Linear layer to patch; name one with --layer")
    return paths[-1]


def linear_layer(model: nn.Module, path: str) -> nn.Linear:
    """The ``nn.Linear`` at ``path``; any other module is refused in one line."""
    try:
        module = model.get_submodule(path)
    except AttributeError:
        raise ArchRepairError(f"no layer {path!r} in {type(model).__name__}; name a module path such as fc") from None
    if not isinstance(module, nn.Linear):
        raise ArchRepairError(f"layer {path!r} is a {type(module).__name__}: this method patches nn.Linear layers "
                              "(a convolution's forward impact is not vectorised here); name a linear layer")
    return module


class LayerFeatures:
    """What the model computes before linear layer ``path`` of ``model`` (eval mode, frozen) on
    ``rows`` of ``task.repair``: ``inputs`` ``(N, D)`` (the cached rows, or the layer's inputs) and
    ``layer_inputs`` ``(N, in_features)``; :meth:`logits` of the model from them. ``status``: the
    cache's ``"on"`` or ``"off: <reason>"`` (then the hook path)."""

    def __init__(self, task: RepairTask, model: nn.Module, path: str, rows: np.ndarray) -> None:
        self.layer = linear_layer(model.eval(), path)
        self.rows = np.asarray(rows)
        view = task.block_view(path)
        bound = view.bind(model)
        self.status = bound.status
        if bound.status == "on":
            self.inputs = view.cached_inputs().take(torch.as_tensor(self.rows)).float()
            self._from_inputs = bound.model
            captured = []
            hook = self.layer.register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0].detach()))
            try:
                self.logits()
            finally:
                hook.remove()
            self.layer_inputs = captured[0].flatten(1).float()
            return
        captured, outputs = [], []
        hook = (self.layer, lambda module, inputs: captured.append(inputs[0].detach().flatten(1)))
        for images, _ in task.loader(self.rows):  # the model is in eval mode (above)
            outputs.append(run_with_hooks(model, images, pre_hooks=[hook]))
        self.inputs = torch.cat(captured).float() if captured else torch.zeros(0, self.layer.in_features)
        if outputs and not torch.allclose(self.layer(self.inputs[:len(outputs[0])]), outputs[0], atol=1e-4):
            raise ArchRepairError(f"layer {path!r} is not the model's last operation and the block-input cache is "
                                  f"{self.status}; patch the last linear layer or let the cache run")
        self._from_inputs = self.layer
        self.layer_inputs = self.inputs

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The model's logits ``(B, classes)`` from layer inputs ``(B, D)`` (autograd as the caller sets it)."""
        return self._from_inputs(inputs).float()

    @torch.no_grad()
    def logits(self) -> torch.Tensor:
        """The model's logits ``(N, classes)`` on the rows, with the layer's weights as they are now."""
        return self.forward(self.inputs)
