"""Streaming neuron statistics over ``D_repair``: spectrum counters and mean gradient magnitudes.

One forward pass per batch records each neuron's spatially averaged activation (for the
counters) and, through tensor hooks, the gradient of the loss of the misclassified examples with
respect to the neuron's activation map. Only per-neuron counters are kept, never activation maps
per example, so memory does not grow with the number of examples.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from .neurons import NeuronLayer
from .shift import MomentCounter


@dataclass
class NeuronStatistics:
    """Per-neuron tensors ``(J,)`` over all neuron layers in order.

    ``n_ac``/``n_nc``: activated / not on correctly classified examples; ``n_am``/``n_nm``: on
    misclassified ones; ``gradient``: mean over the misclassified examples of the neuron's gradient
    magnitude (mean of ``|dL/dA|`` over its positions, ``L`` the summed cross-entropy).
    """

    n_ac: torch.Tensor
    n_nc: torch.Tensor
    n_am: torch.Tensor
    n_nm: torch.Tensor
    gradient: torch.Tensor
    correct: int
    misclassified: int
    shifts: list[float] = field(default_factory=list)


def collect_statistics(
    model: nn.Module,
    layers: list[NeuronLayer],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    threshold: float = 0.0,
    progress: bool = True,
    normalisers: list[str] = (),
) -> NeuronStatistics:
    """Run ``model`` (a private eval-mode copy, parameters frozen) over ``batches``; also count the
    input moments of the BatchNorm layers at the module paths ``normalisers``."""
    from tqdm import tqdm

    model = copy.deepcopy(model).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for module in model.modules():  # an in-place op after a probe would overwrite what it saw
        if hasattr(module, "inplace"):
            module.inplace = False
    total = sum(layer.size for layer in layers)
    counts = {key: torch.zeros(total, dtype=torch.float64) for key in ("n_ac", "n_nc", "n_am", "n_nm", "gradient")}
    batch_means: dict[int, torch.Tensor] = {}
    batch_grads: dict[int, torch.Tensor] = {}

    def probe(index: int):
        def hook(module, inputs, output):
            batch_means[index] = _spatial_mean(output.detach())
            if output.requires_grad:
                output.register_hook(lambda grad: batch_grads.__setitem__(index, _spatial_mean(grad.abs())))
        return hook

    modules = dict(model.named_modules())
    handles = [modules[layer.probe].register_forward_hook(probe(i)) for i, layer in enumerate(layers)]
    moments = [MomentCounter() for _ in normalisers]
    handles += [modules[path].register_forward_pre_hook(m.hook) for path, m in zip(normalisers, moments)]
    correct_total = wrong_total = 0
    try:
        for images, labels in tqdm(batches, desc="localising", unit="batch", leave=False, disable=None if progress else True):
            batch_means.clear()
            batch_grads.clear()
            images = images.detach().requires_grad_(True)
            logits = model(images)
            wrong = logits.argmax(1) != labels
            if wrong.any():
                loss = nn.functional.cross_entropy(logits[wrong], labels[wrong], reduction="sum")
                loss.backward()
            means = torch.cat([batch_means[i] for i in range(len(layers))], 1).cpu().double()
            activated = means > threshold
            wrong_cpu = wrong.cpu()
            counts["n_ac"] += activated[~wrong_cpu].sum(0)
            counts["n_nc"] += (~activated[~wrong_cpu]).sum(0)
            counts["n_am"] += activated[wrong_cpu].sum(0)
            counts["n_nm"] += (~activated[wrong_cpu]).sum(0)
            if wrong.any():
                grads = torch.cat([batch_grads[i] for i in range(len(layers))], 1).cpu().double()
                counts["gradient"] += grads[wrong_cpu].sum(0)
            correct_total += int((~wrong_cpu).sum())
            wrong_total += int(wrong_cpu.sum())
    finally:
        for handle in handles:
            handle.remove()
    counts["gradient"] /= max(wrong_total, 1)
    shifts = [m.shift(modules[path]) for path, m in zip(normalisers, moments)]
    return NeuronStatistics(**counts, correct=correct_total, misclassified=wrong_total, shifts=shifts)


def _spatial_mean(tensor: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` or ``(B, C)`` -> ``(B, C)``."""
    return tensor.flatten(2).mean(2) if tensor.dim() > 2 else tensor
