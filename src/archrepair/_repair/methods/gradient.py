"""Gradient repair at four levels (paper section 2.2, Table 1): find the neuron, layer or block
with the largest gradient on the failures and train only its weights; network level trains all
(the plain whole-network fine-tuning every repair must beat).

Registered as ``neuron-gradient``, ``layer-gradient``, ``block-gradient`` and ``network-gradient``.

Example:
    >>> result = GradientRepair(GradientConfig("block")).repair(task)   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from torch import nn

from ...budget import Deadline
from ...errors import ArchRepairError
from ...models import default_blocks, get_block
from ..._search.surgery import trainable_only
from ...train import FitResult, TrainConfig, fit
from ..base import Candidate, ConfiguredRepairer, Repairer, image_passes
from ..block_inputs import BlockView, BoundBlock
from ..retain import RetainConfig, retain_loss, teacher
from ..estimate import cache_seconds, pass_seconds, seconds_per_call, step_batch, training_step
from ..registry import RepairSettings, default_train, register_repairer
from ..task import RepairTask

LEVELS = ("neuron", "layer", "block", "network")


@dataclass
class GradientConfig:
    """``level``: what trains (one of :data:`LEVELS`); ``train``: its SGD settings (early stopping
    on the validation split); ``blocks``: the block list of the block level (default: the model's);
    ``retain``: regression-aware training (:mod:`..retain`)."""

    level: str = "block"
    train: TrainConfig = field(default_factory=default_train)
    blocks: list[str] | None = None
    retain: RetainConfig = field(default_factory=RetainConfig)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ArchRepairError(f"unknown level {self.level!r}; choose one of {', '.join(LEVELS)}")


def failure_gradients(model: nn.Module, task: RepairTask) -> dict[str, torch.Tensor]:
    """Gradient of the summed cross-entropy over ``D_fail`` for every parameter (model in eval mode)."""
    model = copy.deepcopy(model).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    fails = torch.arange(task.repair.num_failures).numpy()
    for images, labels in task.loader(fails):
        nn.functional.cross_entropy(model(images), labels, reduction="sum").backward()
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def train_unit(method: Repairer, task: RepairTask, model: nn.Module, parameters: list[nn.Parameter],
               set_mode: Callable[[nn.Module], None] | None, path: str | None, config: TrainConfig, rows: np.ndarray,
               deadline: Deadline, retain: RetainConfig) -> tuple[FitResult, BlockView | None, str]:
    """Train ``parameters`` of ``model`` in place on the ``task`` rows ``rows`` (SGD ``config``,
    early stopping on the validation rows, the ``retain`` term when active), on the cached inputs
    of the unit at ``path`` when ``set_mode`` freezes the rest (``None``: the whole network trains).
    Returns the fit's history, the unit's view (for the final choice) and the cache status."""
    view, bound = _bind_unit(task, model, set_mode, path, method.work_dir)
    loss_fn = None
    if retain.active:
        reference = teacher(task.model, path if view is not None else None, view if bound.status == "on" else None)
        loss_fn = retain_loss(retain, task.original_logits(), reference)
    history = fit(bound.model, bound.loader(rows, config.batch_size, shuffle=True, seed_offset=13,
                                            with_rows=loss_fn is not None),
                  task.schedule(config), val_loader=bound.loader(task.val_indices), parameters=parameters,
                  set_train_mode=set_mode, description=method.name, deadline=deadline, loss_fn=loss_fn,
                  on_epoch=lambda e: method.log(f"{method.name} epoch {e.epoch + 1}: val {e.val_accuracy:.4f}"))
    return history, view, bound.status


def unit_image_passes(task: RepairTask, history: FitResult, rows: np.ndarray, status: str) -> float:
    """Image passes of :func:`train_unit`: the cache's one pass over ``D_repair`` when on, else every
    epoch's training rows and validation rows."""
    if status == "on":
        return image_passes(task, len(task.repair.y))
    return image_passes(task, history.epochs_run * (len(rows) + len(task.val_indices)))


def unit_seconds(task: RepairTask, model: nn.Module, parameters: list[nn.Parameter],
                 set_mode: Callable[[nn.Module], None] | None, path: str | None, config: TrainConfig,
                 rows: np.ndarray) -> float:
    """Estimated seconds of :func:`train_unit` with these arguments, early stopping off: timed SGD
    steps (on the unit's cached inputs when :func:`train_unit` would use them, plus building them)
    and one validation pass per epoch."""
    view, bound = _bind_unit(task, model, set_mode, path, build=False)
    (set_mode or (lambda m: m.train()))(model)
    batch, making = step_batch(task.loader(rows, config.batch_size, shuffle=True), bound, view)
    step = making + seconds_per_call(training_step(bound.model, parameters, batch, task.amp))
    steps = -(-len(rows) // config.batch_size)
    return cache_seconds(task, view) + config.epochs * (
        steps * step + pass_seconds(bound.model, task, task.val_indices, view))


def _bind_unit(task: RepairTask, model: nn.Module, set_mode: Callable[[nn.Module], None] | None, path: str | None,
               work_dir=None, build: bool = True) -> tuple[BlockView | None, BoundBlock]:
    """The view of the unit at ``path`` and ``model`` bound to it; the whole network (``set_mode``
    ``None``) has no view and runs on images."""
    if set_mode is None:
        return None, BoundBlock(model, task.loader, "off: the whole network trains")
    view = task.block_view(path, work_dir)
    return view, view.bind(model, set_mode, build)


class GradientRepair(ConfiguredRepairer):
    """Train only the weights of the unit (``config.level``) with the largest mean gradient magnitude
    on ``D_fail``: one output channel (neuron), one convolution or linear layer, one block of the
    model's block list, or everything (network, BatchNorm statistics too)."""

    config_type = GradientConfig

    def __init__(self, config: GradientConfig | None = None, log=None) -> None:
        super().__init__(config, log)
        self.name = f"{self.config.level}-gradient"

    def estimate(self, task: RepairTask) -> dict[str, float]:
        """The failure gradients (timed as they are), then timed SGD steps of the chosen unit, one
        validation pass per epoch."""
        model = copy.deepcopy(task.model)
        started = time.perf_counter()
        gradients = failure_gradients(model, task) if self.config.level != "network" else {}
        gradient_seconds = time.perf_counter() - started
        unit, parameters, set_mode, config, handles = self._select(model, gradients)
        seconds = unit_seconds(task, model, parameters, set_mode, _unit_path(unit), config, task.fit_indices)
        for handle in handles:
            handle.remove()
        return {"repair": gradient_seconds + seconds}

    def train(self, task: RepairTask, deadline: Deadline) -> Candidate:
        started = time.perf_counter()
        model = copy.deepcopy(task.model)
        gradients = failure_gradients(model, task) if self.config.level != "network" else {}
        unit, parameters, set_mode, config, handles = self._select(model, gradients)
        history, view, status = train_unit(self, task, model, parameters, set_mode, _unit_path(unit), config,
                                           task.fit_indices, deadline, self.config.retain)
        for handle in handles:
            handle.remove()
        details = {"unit": unit, "history": [asdict(e) for e in history.history], "stop_reason": history.stop_reason,
                   "prefix_cache": status, "image_passes": unit_image_passes(task, history, task.fit_indices, status)}
        block = unit if self.config.level == "block" else None
        return Candidate(model, details, {"repair": time.perf_counter() - started}, block, view=view)

    def _select(self, model: nn.Module, gradients: dict[str, torch.Tensor]):
        train = self.config.train
        if self.config.level == "network":
            for parameter in model.parameters():
                parameter.requires_grad_(True)
            return "network", list(model.parameters()), None, train, []
        if self.config.level == "block":
            names = self.config.blocks or default_blocks(model)
            scores = {}
            for block in names:
                own = {id(p) for p in get_block(model, block).parameters()}
                values = [gradients[n].abs().mean() for n, p in model.named_parameters() if id(p) in own and n in gradients]
                scores[block] = float(torch.stack(values).mean()) if values else 0.0
            chosen = max(scores, key=scores.get)
            module = get_block(model, chosen)
            return chosen, list(module.parameters()), trainable_only(model, module), train, []
        layers = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
        if self.config.level == "layer":
            chosen = max(layers, key=lambda n: float(gradients[f"{n}.weight"].abs().mean()))
            return chosen, list(layers[chosen].parameters()), trainable_only(model, layers[chosen]), train, []
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
        if layer.bias is not None:
            layer.bias.requires_grad_(False)
        return f"{name}[{channel}]", [layer.weight], set_mode, replace(self.config.train, weight_decay=0.0), [handle]


def _unit_path(unit: str) -> str:
    """The module path of a trained unit (a neuron ``conv[3]`` lives in ``conv``)."""
    return unit.partition("[")[0]


def _level(level: str):
    def build(settings: RepairSettings) -> GradientRepair:
        blocks = [settings.block] if settings.block and level == "block" else None  # --block: that block
        return GradientRepair(GradientConfig(level, settings.train, blocks, retain=settings.retain))

    return build


SUMMARIES = {
    "neuron": "train the one output channel with the largest gradient on D_fail",
    "layer": "train the one convolution or linear layer with the largest gradient on D_fail",
    "block": "train the block with the largest gradient on D_fail",
    "network": "train the whole network (plain fine-tuning)",
}
for _name in LEVELS:
    register_repairer(f"{_name}-gradient", SUMMARIES[_name])(_level(_name))
