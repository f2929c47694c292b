"""ArchRepair (Qi et al., TOSEM 2023): localise the vulnerable block, search its architecture and
weights together from the original block, discretise, fine-tune; the template keeps the better.

Registered as ``archrepair``, ``archrepair-fixed-arch`` (no architecture step: only the block's
weights train, the same schedule otherwise) and ``archrepair-layer`` (the paper's layer-level
variant, Table 10: only the convolution of the block with the largest gradient on ``D_fail``).

Example:
    >>> task = make_task(model, record, data, split)            # doctest: +SKIP
    >>> result = ArchRepair(ArchRepairConfig()).repair(task)    # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from ... import distributed
from ...budget import Deadline
from ...errors import ArchRepairError
from ..._localize import LOCALIZE_ROWS, LocalizeConfig, localize
from ...models import get_block, replace_block
from ..._search import DiscreteBlock, RelaxedBlock, SearchConfig, SearchSpace, block_graph, discretise, search
from ..._search.optimise import architecture_step, weight_step
from ..._search.surgery import block_input, check_relaxable, trainable_only
from ...train import TrainConfig, fit
from ..base import Candidate, Repairer, first_off, image_passes
from ..estimate import cache_seconds, pass_seconds, seconds_per_call, step_batch, training_step
from ..registry import RepairSettings, default_train, register_repairer
from ..retain import RetainConfig, retain_loss, teacher
from ..task import RepairTask

SCORE_ROWS = 2048
"""Rows of the architecture half whose accuracy each search epoch reports (a figure that is logged and
recorded, never used to decide): on the whole training set, scoring all of its ~20,000 rows took
10-28% of the search's time (``benchmarks/cache_cost.py``)."""


@dataclass
class ArchRepairConfig:
    """``block``: repair this block (``None``: localise). ``rule``: ``edge`` (paper) or ``top2``.
    ``finetune``: settings of the discrete block's fine-tuning (early stopping on the validation split).
    ``single_layer``: relax only the convolution of the block with the largest gradient on
    ``D_fail`` (the paper's layer-level variant, Table 10). ``localize_rows``: localise on
    ``D_fail`` plus at most this many other fit rows (a seeded sample; ``None``: every fit row)."""

    block: str | None = None
    localize: LocalizeConfig = field(default_factory=LocalizeConfig)
    space: SearchSpace = field(default_factory=SearchSpace)
    search: SearchConfig = field(default_factory=SearchConfig)
    rule: str = "edge"
    single_layer: bool = False
    finetune: TrainConfig = field(default_factory=default_train)
    localize_rows: int | None = LOCALIZE_ROWS
    retain: RetainConfig = field(default_factory=RetainConfig)


class ArchRepair(Repairer):
    """Block-level, architecture-oriented repair; see the module docstring. Its epoch budget goes
    half to the search and the rest to fine-tuning; ``work_dir`` keeps both phases resumable."""

    name = "archrepair"
    phases = ("search", "finetune")

    def __init__(self, config: ArchRepairConfig | None = None, log=None) -> None:
        super().__init__(log)
        self.config = config or ArchRepairConfig()

    def set_phase_epochs(self, phase: str, epochs: int) -> None:
        config = self.config
        if phase == "search":
            warmup = min(config.search.warmup_epochs, epochs - 1)
            self.config = replace(config, search=replace(config.search, epochs=epochs, warmup_epochs=warmup))
        else:
            self.config = replace(config, finetune=replace(config.finetune, epochs=epochs))

    def check(self, model, input_shape, split) -> None:
        """A given block must be one the search can relax."""
        if self.config.block:
            check_relaxable(model, self.config.block, input_shape)

    def estimate(self, task: RepairTask) -> dict[str, float]:
        """Localisation from a timed pass over a sample of its rows; the search from timed weight
        steps and weight-plus-architecture steps on the relaxed block; fine-tuning from timed steps
        of the block at its original architecture; plus one validation pass per epoch each."""
        config, seconds = self.config, {}
        block = config.block
        if block is None:
            block, seconds["localize"] = localize_seconds(task, config.localize, config.localize_rows)
        torch.manual_seed(task.seed)
        model = copy.deepcopy(task.model)
        graph = block_graph(get_block(model, block), block_input(model, block, task.example()))
        relaxed = RelaxedBlock(graph, config.space).to(task.device)
        replace_block(model, block, relaxed)
        view = task.block_view(block)
        set_mode = trainable_only(model, relaxed)
        bound = view.bind(model, set_mode, build=False)
        set_mode(model)
        search_config = task.schedule(config.search)
        weights = [p for p in relaxed.weight_parameters() if p.requires_grad]
        weight_opt = torch.optim.SGD(weights or [torch.zeros(1, requires_grad=True)], lr=1e-6)
        arch_opt = torch.optim.Adam(relaxed.architecture_parameters(), lr=1e-6)
        weight_rows, architecture_rows = search_halves(task, config.search)
        batch, making = step_batch(task.loader(weight_rows, config.search.batch_size, shuffle=True), bound, view)
        weight_only = making + seconds_per_call(
            lambda: weight_step(bound.model, *batch, weights, weight_opt, 1e-6, search_config))
        both = weight_only + making + seconds_per_call(
            lambda: architecture_step(bound.model, relaxed, *batch, arch_opt, search_config))
        steps = -(-len(weight_rows) // config.search.batch_size)
        warmup = min(config.search.warmup_epochs, config.search.epochs)
        seconds["search"] = cache_seconds(task, view) + \
            steps * (warmup * weight_only + (config.search.epochs - warmup) * both) + \
            config.search.epochs * pass_seconds(bound.model, task, scored_rows(architecture_rows, task.seed), view)
        repaired = copy.deepcopy(task.model)
        replace_block(repaired, block, DiscreteBlock(discretise(RelaxedBlock(graph, config.space)), graph.edges))
        set_mode = trainable_only(repaired, get_block(repaired, block))
        bound = view.bind(repaired, set_mode, build=False)
        set_mode(repaired)
        batch, making = step_batch(task.loader(task.fit_indices, config.finetune.batch_size, shuffle=True), bound, view)
        parameters = list(get_block(repaired, block).parameters())
        step = making + seconds_per_call(training_step(bound.model, parameters, batch, task.amp))
        fit_steps = -(-len(task.fit_indices) // config.finetune.batch_size)
        seconds["finetune"] = config.finetune.epochs * (
            fit_steps * step + pass_seconds(bound.model, task, task.val_indices, view))
        return seconds

    def train(self, task: RepairTask, deadline: Deadline) -> Candidate:
        config, seconds, details = self.config, {}, {}
        work = self.work_dir
        if work:
            work.mkdir(parents=True, exist_ok=True)
        base = task.model

        started = time.perf_counter()
        block = config.block
        if block is None:
            block, details["localization"] = localised_block(task, config.localize, config.localize_rows)
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
        view = task.block_view(block, work)
        bound = view.bind(model, set_mode)
        loss_fn = self._retain(task, block, view, bound.status)
        rows = loss_fn is not None
        weight_rows, architecture_rows = search_halves(task, config.search)
        history = search(bound.model, relaxed,
                         bound.loader(weight_rows, config.search.batch_size, shuffle=True, with_rows=rows),
                         bound.loader(architecture_rows, config.search.batch_size, shuffle=True, seed_offset=7,
                                      with_rows=rows),
                         task.schedule(config.search), set_mode, work / "search.pt" if work else None,
                         on_epoch=lambda e: self.log(f"search epoch {e.epoch + 1}: val {e.val_accuracy:.4f} | {e.architecture}"),
                         deadline=deadline, loss_fn=loss_fn,
                         score_loader=bound.loader(scored_rows(architecture_rows, task.seed)))
        genotype = discretise(relaxed, config.rule)
        seconds["search"] = time.perf_counter() - started
        if distributed.joined():  # every process must hold the same architecture, bit for bit
            details["architecture_sha256"] = distributed.digests(relaxed.architecture_parameters())
            if len(set(details["architecture_sha256"])) > 1:
                raise ArchRepairError(f"the processes ended the search with different architectures "
                                      f"({details['architecture_sha256']}); rerun in one process and report this")
        details["search"] = [asdict(e) for e in history.epochs]
        details["search_stop_reason"] = history.stop_reason
        warmup = config.search.warmup_epochs
        if warmup < config.search.epochs and len(history.epochs) <= warmup:  # fixed-arch has no step by design
            self.note(details, f"the search took no architecture step: {len(history.epochs)} search epoch(s) ran, "
                               f"the first {warmup} being warm-up (weights only), so the block keeps its "
                               "architecture; give more epochs (--budget-epochs, --budget-seconds, --search-epochs) or "
                               "fewer --warmup-epochs")
        self.log(f"discrete architecture: {genotype.describe()}")

        started = time.perf_counter()
        torch.manual_seed(task.seed + 1)
        repaired = copy.deepcopy(base)
        discrete = DiscreteBlock(genotype, graph.edges, relaxed).to(task.device)
        replace_block(repaired, block, discrete)
        set_mode = trainable_only(repaired, discrete)
        tuned_bound = view.bind(repaired, set_mode)
        if tuned_bound.status != bound.status:  # the teacher must take the fine-tuning's batches
            loss_fn = self._retain(task, block, view, tuned_bound.status)
        tuned = fit(tuned_bound.model,
                    tuned_bound.loader(task.fit_indices, config.finetune.batch_size, shuffle=True, seed_offset=13,
                                       with_rows=rows),
                    task.schedule(config.finetune), val_loader=tuned_bound.loader(task.val_indices),
                    set_train_mode=set_mode, state_path=work / "finetune.pt" if work else None, description="fine-tune",
                    on_epoch=lambda e: self.log(f"fine-tune epoch {e.epoch + 1}: val {e.val_accuracy:.4f}"),
                    deadline=deadline, loss_fn=loss_fn)
        seconds["finetune"] = time.perf_counter() - started
        details["finetune"] = [asdict(e) for e in tuned.history]
        details["finetune_stop_reason"] = tuned.stop_reason
        details["prefix_cache"] = first_off(bound.status, tuned_bound.status)
        located = details.get("localization", {}).get("rows", 0)
        if details["prefix_cache"] == "on":
            images = located + len(task.repair.y)
        else:
            images = located + len(history.epochs) * (len(task.search_train) + len(task.search_val)) + \
                tuned.epochs_run * (len(task.fit_indices) + len(task.val_indices))
        details["image_passes"] = image_passes(task, images)
        return Candidate(repaired, details, seconds, block, genotype.to_json(), view)

    def _retain(self, task: RepairTask, block: str, view, status: str):
        """The regression-aware loss of the search and fine-tuning, ``None`` when off."""
        if not self.config.retain.active:
            return None
        return retain_loss(self.config.retain, task.original_logits(),
                           teacher(task.model, block, view if status == "on" else None))


def scored_rows(architecture_rows: np.ndarray, seed: int) -> np.ndarray:
    """The rows of the architecture half whose accuracy each search epoch reports: all of them, or a
    seeded sample of SCORE_ROWS (sorted), the same in every epoch."""
    if len(architecture_rows) <= SCORE_ROWS:
        return architecture_rows
    return np.sort(np.random.default_rng(seed + 11).choice(architecture_rows, size=SCORE_ROWS, replace=False))


def search_halves(task: RepairTask, config: SearchConfig) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the weight steps and of the architecture steps: the task's two halves of the fit
    rows, or, without ``failures_in_architecture_split``, every ``D_fail`` row in the weight half."""
    if config.failures_in_architecture_split:
        return task.search_train, task.search_val
    failing = task.search_val < task.repair.num_failures
    return np.sort(np.concatenate([task.search_train, task.search_val[failing]])), task.search_val[~failing]


def localize_seconds(task: RepairTask, config: LocalizeConfig, limit: int | None) -> tuple[str, float]:
    """The block :func:`localised_block` would choose (on probes) and its estimated seconds, from two
    timed probes of its rows (so that the fixed cost, tracing and copies, is not scaled with the rows)."""
    rows = task.localization_rows(limit)
    failures, others = rows[rows < task.repair.num_failures], rows[rows >= task.repair.num_failures]
    timed = []
    for size in (64, 128, 512):  # the first is a warm-up
        probe = np.concatenate([failures[:size], others[:size]])
        started = time.perf_counter()
        block = localize(task.model, task.loader(probe), task.input_shape, config=config, progress=False).chosen
        timed.append((len(probe), time.perf_counter() - started))
    (small, fast), (large, slow) = timed[1:]
    per_row = max(slow - fast, 0.0) / max(large - small, 1)
    return block, fast + per_row * (len(rows) - small)


def localised_block(task: RepairTask, config: LocalizeConfig, limit: int | None) -> tuple[str, dict]:
    """The block the localisation ``config`` chooses on ``D_fail`` plus at most ``limit`` other fit
    rows of ``task``, and its report (JSON-ready, with the number of rows)."""
    rows = task.localization_rows(limit)
    report = localize(task.model, task.loader(rows), task.input_shape, config=config)
    return report.chosen, report.to_json() | {"rows": int(len(rows))}


def _largest_gradient_layer(model: torch.nn.Module, block: str, task: RepairTask) -> str:
    """The path of the convolution inside ``block`` whose weight has the largest mean gradient on D_fail."""
    from .gradient import failure_gradients  # here, so that the methods register in their listed order

    gradients = failure_gradients(model, task)
    paths = {id(m): n for n, m in model.named_modules()}
    candidates = [paths[id(m)] for m in get_block(model, block).modules() if isinstance(m, torch.nn.Conv2d)]
    return max(candidates, key=lambda path: float(gradients[f"{path}.weight"].abs().mean()))


def _config(settings: RepairSettings, **changes) -> ArchRepairConfig:
    return ArchRepairConfig(block=settings.block, localize=settings.localize, space=settings.space,
                            search=settings.search, rule=settings.rule, finetune=settings.train,
                            localize_rows=settings.localize_rows, retain=settings.retain, **changes)


@register_repairer("archrepair", "localise the block, search its architecture and weights, fine-tune (the paper)",
                   searches=True)
def archrepair(settings: RepairSettings) -> ArchRepair:
    return ArchRepair(_config(settings))


@register_repairer("archrepair-fixed-arch", "ArchRepair without the architecture step: the block's weights only",
                   searches=True)
def archrepair_fixed_arch(settings: RepairSettings) -> ArchRepair:
    return _FixedArchitecture(_config(settings))


@register_repairer("archrepair-layer", "ArchRepair on the block's convolution with the largest failure gradient",
                   searches=True)
def archrepair_layer(settings: RepairSettings) -> ArchRepair:
    return ArchRepair(_config(settings, single_layer=True))


class _FixedArchitecture(ArchRepair):
    """Every search epoch is a warm-up epoch, so no architecture step is taken."""

    def __init__(self, config: ArchRepairConfig, log=None) -> None:
        super().__init__(replace(config, search=replace(config.search, warmup_epochs=config.search.epochs)), log)

    def set_phase_epochs(self, phase: str, epochs: int) -> None:
        super().set_phase_epochs(phase, epochs)
        search = self.config.search
        self.config = replace(self.config, search=replace(search, warmup_epochs=search.epochs))
