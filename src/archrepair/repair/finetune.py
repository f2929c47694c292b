"""Whole-network fine-tuning on ``D_repair``: the plain baseline every repair must beat."""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, replace

import torch

from ..train import TrainConfig, fit
from .base import RepairResult, Repairer, keep_better
from .task import RepairTask


@dataclass
class FineTuneConfig:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=8, batch_size=64, lr=0.01, weight_decay=5e-4, schedule="cosine", patience=3))


class FineTune(Repairer):
    """Train every weight of the network (BatchNorm statistics too) on the fit part of ``D_repair``,
    early-stopped on the validation part; keep the better of original and fine-tuned by validation."""

    name = "finetune"

    def __init__(self, config: FineTuneConfig | None = None, log=None) -> None:
        self.config = config or FineTuneConfig()
        self.log = log or (lambda message: None)

    def repair(self, task: RepairTask) -> RepairResult:
        started, deadline = time.perf_counter(), self.budget.deadline()
        torch.manual_seed(task.seed)
        model = copy.deepcopy(task.model)
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        config = replace(self.config.train, amp=task.amp)
        val = task.loader(task.val_indices)
        history = fit(model, task.loader(task.fit_indices, config.batch_size, shuffle=True, seed_offset=13), config,
                      val_loader=val, description="fine-tune network",
                      on_epoch=lambda e: self.log(f"fine-tune epoch {e.epoch + 1}: val {e.val_accuracy:.4f}"),
                      deadline=deadline)
        return keep_better(
            self.name, task, model, phase_seconds={"finetune": time.perf_counter() - started},
            details={"finetune": [asdict(e) for e in history.history], "stop_reason": history.stop_reason},
        )
