"""ArchRepair (Qi et al., TOSEM 2023): localise the vulnerable block, search its architecture and
weights together from the original block, discretise, fine-tune, keep the better block.

Example:
    >>> task = make_task(model, record, data, split)            # doctest: +SKIP
    >>> result = ArchRepair(ArchRepairConfig()).repair(task)    # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from ..localize import LocalizeConfig, localize
from ..models import get_block, replace_block
from ..search import DiscreteBlock, RelaxedBlock, SearchConfig, SearchSpace, block_graph, discretise, search
from ..train import TrainConfig, fit
from .base import RepairResult, Repairer, keep_better
from .gradient import failure_gradients
from .surgery import block_input, trainable_only
from .task import RepairTask


@dataclass
class ArchRepairConfig:
    """``block``: repair this block (``None``: localise). ``rule``: ``edge`` (paper) or ``top2``.
    ``finetune``: settings of the discrete block's fine-tuning (early stopping on the validation split).
    ``single_layer``: relax only the convolution of the block with the largest gradient on
    ``D_fail`` (the paper's layer-level variant, Table 10).
    ``work_dir``: where per-epoch state goes, so an interrupted repair resumes."""

    block: str | None = None
    localize: LocalizeConfig = field(default_factory=LocalizeConfig)
    space: SearchSpace = field(default_factory=SearchSpace)
    search: SearchConfig = field(default_factory=SearchConfig)
    rule: str = "edge"
    single_layer: bool = False
    finetune: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=8, batch_size=64, lr=0.01, weight_decay=5e-4, schedule="cosine", patience=3))
    work_dir: Path | None = None


class ArchRepair(Repairer):
    """Block-level, architecture-oriented repair; see the module docstring."""

    name = "archrepair"

    def __init__(self, config: ArchRepairConfig | None = None, log=None) -> None:
        self.config = config or ArchRepairConfig()
        self.log = log or (lambda message: None)

    def repair(self, task: RepairTask) -> RepairResult:
        config, seconds, details = self.config, {}, {}
        work = Path(config.work_dir) if config.work_dir else None
        if work:
            work.mkdir(parents=True, exist_ok=True)
        base = task.model
        deadline = self.budget.deadline()

        started = time.perf_counter()
        block = config.block
        if block is None:
            report = localize(base, task.loader(task.fit_indices), task.input_shape, config=config.localize)
            block = report.chosen
            details["localization"] = report.to_json()
        if config.single_layer:
            block = _largest_gradient_layer(base, block, task)
        seconds["localize"] = time.perf_counter() - started
        self.log(f"block to repair: {block}")

        started = time.perf_counter()
        torch.manual_seed(task.seed)
        model = copy.deepcopy(base)
        graph = block_graph(get_block(model, block), block_input(model, block, task.example()))
        relaxed = RelaxedBlock(graph, config.space).to(task.device)
        replace_block(model, block, relaxed)
        set_mode = trainable_only(model, relaxed)
        history = search(model, relaxed, task.loader(task.search_train, config.search.batch_size, shuffle=True),
                         task.loader(task.search_val, config.search.batch_size, shuffle=True, seed_offset=7),
                         replace(config.search, amp=task.amp), set_mode, work / "search.pt" if work else None,
                         on_epoch=lambda e: self.log(f"search epoch {e.epoch + 1}: val {e.val_accuracy:.4f} | {e.architecture}"),
                         deadline=deadline)
        genotype = discretise(relaxed, config.rule)
        seconds["search"] = time.perf_counter() - started
        details["search"] = [asdict(e) for e in history.epochs]
        details["search_stop_reason"] = history.stop_reason
        self.log(f"discrete architecture: {genotype.describe()}")

        started = time.perf_counter()
        torch.manual_seed(task.seed + 1)
        repaired = copy.deepcopy(base)
        discrete = DiscreteBlock(genotype, graph.edges, relaxed).to(task.device)
        replace_block(repaired, block, discrete)
        set_mode = trainable_only(repaired, discrete)
        tuned = fit(repaired, task.loader(task.fit_indices, config.finetune.batch_size, shuffle=True, seed_offset=13),
                    replace(config.finetune, amp=task.amp), val_loader=task.loader(task.val_indices), set_train_mode=set_mode,
                    state_path=work / "finetune.pt" if work else None, description="fine-tune",
                    on_epoch=lambda e: self.log(f"fine-tune epoch {e.epoch + 1}: val {e.val_accuracy:.4f}"),
                    deadline=deadline)
        for parameter in repaired.parameters():
            parameter.requires_grad_(True)
        seconds["finetune"] = time.perf_counter() - started
        details["finetune"] = [asdict(e) for e in tuned.history]
        details["finetune_stop_reason"] = tuned.stop_reason

        result = keep_better(self.name, task, repaired, phase_seconds=seconds, details=details, block=block,
                             genotype=genotype.to_json())
        self.log(f"validation accuracy (mean loss): original {result.val_accuracy_original:.4f} "
                 f"({result.val_loss_original:.4f}), repaired {result.val_accuracy_repaired:.4f} "
                 f"({result.val_loss_repaired:.4f}) -> keep {result.kept}")
        return result

def _largest_gradient_layer(model: torch.nn.Module, block: str, task: RepairTask) -> str:
    """The path of the convolution inside ``block`` whose weight has the largest mean gradient on D_fail."""
    gradients = failure_gradients(model, task)
    paths = {id(m): n for n, m in model.named_modules()}
    candidates = [paths[id(m)] for m in get_block(model, block).modules() if isinstance(m, torch.nn.Conv2d)]
    return max(candidates, key=lambda path: float(gradients[f"{path}.weight"].abs().mean()))
