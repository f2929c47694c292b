"""Predictions and accuracy reports (overall and per class)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import distributed
from .data.loader import BatchLoader
from .device import autocast


@torch.no_grad()
def predict(model: nn.Module, loader: BatchLoader, amp: bool = False,
            progress: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, num_classes)`` (float32) and labels ``(N,)`` (int64), on the CPU, for every
    example of ``loader`` in its order, with ``model`` in eval mode: the one evaluation loop. Spread
    over processes, each predicts every ``N``-th batch and every process gets the whole."""
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    outputs, labels = [], []
    batches = tqdm(distributed.my_batches(loader), desc=progress, unit="batch", leave=False,
                   disable=None if progress and distributed.writes_files() else True)
    for images, targets, *_ in batches:  # a loader may yield rows too
        with autocast(loader.device, amp):
            outputs.append(model(images).float().cpu())
        labels.append(targets.cpu())
    model.train(was_training)
    batches = distributed.gather_batches(list(zip(outputs, labels)))
    if not batches:
        return torch.empty(0), torch.empty(0, dtype=torch.int64)
    return torch.cat([output for output, _ in batches]), torch.cat([label for _, label in batches])


def predict_logits(model: nn.Module, loader: BatchLoader, amp: bool = False, progress: str | None = None) -> torch.Tensor:
    """Logits ``(N, num_classes)`` (float32, on the CPU) for every example of ``loader``, in its order."""
    return predict(model, loader, amp, progress)[0]


def accuracy_report(predictions: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    """``{"accuracy", "examples", "correct", "per_class": {name: {"accuracy", "examples"}}}``; accuracies in [0, 1]."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    correct = predictions == labels
    per_class = {}
    for index, name in enumerate(class_names):
        members = labels == index
        count = int(members.sum())
        per_class[name] = {
            "accuracy": float(correct[members].mean()) if count else float("nan"),
            "examples": count,
        }
    return {
        "accuracy": float(correct.mean()) if len(labels) else float("nan"),
        "examples": int(len(labels)),
        "correct": int(correct.sum()),
        "per_class": per_class,
    }
