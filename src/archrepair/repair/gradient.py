"""Gradient repair at four levels (paper section 2.2, Table 1): find the neuron, layer or block
with the largest gradient on the failures and train only its weights; network level trains all.

Example:
    >>> result = GradientRepair("block").repair(task)   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, replace

import torch
from torch import nn

from ..errors import ArchRepairError
from ..models import default_blocks, get_block
from ..train import TrainConfig, fit
from .base import RepairResult, Repairer, keep_better
from .surgery import trainable_only
from .task import RepairTask

LEVELS = ("neuron", "layer", "block", "network")


def failure_gradients(model: nn.Module, task: RepairTask) -> dict[str, torch.Tensor]:
    """Gradient of the summed cross-entropy over ``D_fail`` for every parameter (model in eval mode)."""
    model = copy.deepcopy(model).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    fails = torch.arange(task.repair.num_failures).numpy()
    for images, labels in task.loader(fails):
        nn.functional.cross_entropy(model(images), labels, reduction="sum").backward()
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


class GradientRepair(Repairer):
    """Train only the weights of the unit (``level``) with the largest mean gradient magnitude on
    ``D_fail``: one output channel (neuron), one convolution or linear layer, one block of the
    model's block list, or everything (network). Early stopping and the keep-the-better rule as
    ArchRepair."""

    def __init__(self, level: str, config: TrainConfig | None = None, blocks: list[str] | None = None) -> None:
        if level not in LEVELS:
            raise ArchRepairError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
        self.level, self.blocks = level, blocks
        self.config = config or TrainConfig(epochs=8, batch_size=64, lr=0.01, weight_decay=5e-4, patience=3)
        self.name = f"{level}-gradient"

    def repair(self, task: RepairTask) -> RepairResult:
        started, deadline = time.perf_counter(), self.budget.deadline()
        torch.manual_seed(task.seed)
        model = copy.deepcopy(task.model)
        gradients = failure_gradients(model, task)
        unit, parameters, set_mode, config, handles = self._select(model, gradients)
        config = replace(config, amp=task.amp)
        history = fit(model, task.loader(task.fit_indices, config.batch_size, shuffle=True, seed_offset=13), config,
                      val_loader=task.loader(task.val_indices), parameters=parameters, set_train_mode=set_mode,
                      description=self.name, deadline=deadline)
        for handle in handles:
            handle.remove()
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return keep_better(
            self.name, task, model, phase_seconds={"repair": time.perf_counter() - started},
            details={"unit": unit, "history": [asdict(e) for e in history.history], "stop_reason": history.stop_reason},
        )

    def _select(self, model: nn.Module, gradients: dict[str, torch.Tensor]):
        if self.level == "network":
            for parameter in model.parameters():
                parameter.requires_grad_(True)
            return "network", list(model.parameters()), None, self.config, []
        if self.level == "block":
            names = self.blocks or default_blocks(model)
            scores = {}
            for block in names:
                own = {id(p) for p in get_block(model, block).parameters()}
                values = [gradients[n].abs().mean() for n, p in model.named_parameters() if id(p) in own and n in gradients]
                scores[block] = float(torch.stack(values).mean()) if values else 0.0
            chosen = max(scores, key=scores.get)
            module = get_block(model, chosen)
            return chosen, list(module.parameters()), trainable_only(model, module), self.config, []
        layers = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
        if self.level == "layer":
            chosen = max(layers, key=lambda n: float(gradients[f"{n}.weight"].abs().mean()))
            return chosen, list(layers[chosen].parameters()), trainable_only(model, layers[chosen]), self.config, []
        return self._neuron(model, layers, gradients)

    def _neuron(self, model, layers, gradients):
        """One output channel: its layer's weight trains with the other channels' gradients masked
        (and no weight decay, which would move the masked channels)."""
        best, best_score = None, -1.0
        for name in layers:
            per_channel = gradients[f"{name}.weight"].abs().flatten(1).mean(1)
            channel = int(per_channel.argmax())
            if float(per_channel[channel]) > best_score:
                best, best_score = (name, channel), float(per_channel[channel])
        name, channel = best
        layer = layers[name]
        set_mode = trainable_only(model, layer)
        mask = torch.zeros_like(layer.weight)
        mask[channel] = 1
        handle = layer.weight.register_hook(lambda grad: grad * mask)
        parameters = [layer.weight]
        if layer.bias is not None:
            layer.bias.requires_grad_(False)
        config = copy.copy(self.config)
        config.weight_decay = 0.0
        return f"{name}[{channel}]", parameters, set_mode, config, [handle]
