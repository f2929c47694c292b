"""Regression-aware training: keep what the original model got right while repairing.

Focal distillation as in positive-congruent training (Yan et al., CVPR 2021): beside the
cross-entropy, a KL term pulls the model's outputs towards the original model's, only on the
examples the original classifies correctly (so that repairing the failures does not flip them):

    loss = CE(z, y) + λ · mean_i [ 1(argmax o_i = y_i) · T² · KL(softmax(t_i / T) || softmax(z_i / T)) ]

with ``z`` the model's logits, ``o`` the original's, stored once per row of ``D_repair``
(:meth:`RepairTask.original_logits`), and ``t`` the original model's logits on the same batch in
the same mode as the model being trained (its BatchNorm layers on batch statistics where the
trained part's are; :func:`teacher`). Distilling towards the stored eval-mode logits instead pulls
the training-mode outputs, and so the weights, away from what evaluation sees: measured on the
digits, it raised the negative flips of network-level training from 1.2% to 4.7%. Every
gradient-trained method takes it (``--retain distill --retain-weight λ``): ArchRepair's search
(weight and architecture steps) and fine-tuning, the gradient levels and the "train more" baselines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ArchRepairError

RETAIN_KINDS = ("none", "distill")
LossFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class RetainConfig:
    """``kind``: ``none`` or ``distill``; ``weight``: λ; ``temperature``: T of the softened outputs."""

    kind: str = "none"
    weight: float = 1.0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in RETAIN_KINDS:
            raise ArchRepairError(f"unknown --retain {self.kind!r}; choose one of {', '.join(RETAIN_KINDS)}")
        if self.weight < 0 or self.temperature <= 0:
            raise ArchRepairError(f"the retain weight must be 0 or more and the temperature above 0, got "
                                  f"{self.weight} and {self.temperature}")

    @property
    def active(self) -> bool:
        return self.kind != "none" and self.weight > 0


def teacher(original: nn.Module, path: str | None, view=None) -> nn.Module:
    """A frozen copy of ``original`` in the mode the trained model is in: everything in eval mode
    but the module at ``path`` (``None``: the whole network) in training mode; bound to ``view``
    (cached block inputs) when given, so that it takes the same batches."""
    import copy

    from ..models import get_block

    model = copy.deepcopy(original).requires_grad_(False).eval()
    (model if path is None else get_block(model, path)).train()
    return view.bind(model).model if view is not None else model


def retain_loss(config: RetainConfig, original_logits: torch.Tensor, reference: nn.Module) -> LossFunction:
    """``loss(logits (B, C), labels (B,), rows (B,), inputs)``: cross-entropy plus the focal
    distillation term towards ``reference(inputs)`` (:func:`teacher`) on the rows the original model
    classifies correctly (``original_logits``: ``(N, C)``, indexed by ``rows``), batch mean."""
    temperature = config.temperature

    def loss(logits: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        right = (original_logits[rows.to(original_logits.device)].argmax(1).to(labels.device) == labels).float()
        with torch.no_grad():
            target = reference(inputs).float()
        divergence = nn.functional.kl_div(nn.functional.log_softmax(logits / temperature, 1),
                                          nn.functional.log_softmax(target / temperature, 1),
                                          reduction="none", log_target=True).sum(1)
        penalty = (right * divergence).mean() * temperature**2
        return nn.functional.cross_entropy(logits, labels) + config.weight * penalty

    return loss
