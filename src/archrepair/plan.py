"""A repair, described once. :class:`RepairPlan` holds everything a repair is (the checkpoint, its
data, the failures or the field set, the scenario, the method with its settings, the budget, the
task settings, the seed); it is built from CLI options, from the Python API's keyword arguments or
from a study row, and every door runs it the same way: :func:`prepare` loads and checks it (the
method's settings check included, before any work), :func:`run_plan` repairs and stores the plan
whole in the report, :func:`dry_run` is the same path stopping before training.

Example:
    >>> from archrepair.plan import RepairPlan, prepare, run_plan
    >>> plan = RepairPlan("runs/r18", failures="runs/fail.json", out="runs/r18-fixed")  # doctest: +SKIP
    >>> result, report = run_plan(prepare(plan))                                         # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from . import distributed
from ._checks import check_same_settings, replace_stale
from ._repair.base import first_off
from ._repair.estimate import peak_memory_mb
from ._repair import DEFAULT_METHOD, RepairResult, RepairSettings, Repairer, TaskConfig, get_repairer, make_task
from ._repair.pipeline import run_repair
from ._repair.run_time import RunTime
from ._repair.task import RepairTask
from ._localize import LocalizationReport
from .budget import Budget
from .errors import ArchRepairError
from .data import FailureSplit
from .fileio import json_ready, write_text_atomically
from .problem import Problem, load_problem

Say = Callable[[str], None]


@dataclass
class RepairPlan:
    """Everything one repair is. ``checkpoint``: the model's folder (never written to); ``data``: a
    data spec (default: the data it was trained on); ``failures``: a failure split file, or, when
    ``None``, ``count`` test failures chosen with ``task.seed`` under ``protocol`` (``holdout``: the
    share of the test set held out; ``test_validation``: the share held out for validation when the
    model's own is unknown); ``field``: a field set replacing the test split (the failures come from
    it); ``task.corruption`` (with ``corruption_dir`` for a stored copy): the shift the failures come
    from. ``method`` with ``settings`` and ``budget``; ``task``: the settings every method is given
    (training examples, seed, keep level, device: ``auto`` picks the GPU when there is one);
    ``localization``: a ``localize --out`` report whose chosen block is repaired (it must have been
    made for this model and these failures); ``out``: the repaired-model folder (``None``: nothing
    written); ``batch_size``: examples per evaluation batch."""

    checkpoint: str
    method: str = DEFAULT_METHOD
    settings: RepairSettings = dataclasses.field(default_factory=RepairSettings)
    budget: Budget = dataclasses.field(default_factory=Budget)
    task: TaskConfig = dataclasses.field(default_factory=TaskConfig)
    data: str | None = None
    failures: str | None = None
    field: str | None = None
    corruption_dir: str | None = None
    count: int = 1000
    protocol: str = "heldout"
    holdout: float = 0.5
    test_validation: float | None = None
    batch_size: int = 256
    localization: str | None = None
    out: str | None = None

    def __post_init__(self) -> None:
        for name in ("checkpoint", "data", "failures", "field", "corruption_dir", "localization", "out"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, str(value))

    @property
    def seed(self) -> int:
        """Draws the failures (when chosen now), ``D_repair``'s sample and splits, and seeds the method."""
        return self.task.seed

    def record(self) -> dict:
        """The plan as JSON-ready values, stored whole with every result (``report.json``'s ``plan``)."""
        return json_ready(asdict(self))

    @property
    def work(self) -> Path | None:
        """The folder an interrupted repair resumes from: ``<out>.work``."""
        return None if self.out is None else Path(self.out).with_name(Path(self.out).name + ".work")


@dataclass
class Prepared:
    """A plan loaded and checked: its problem (model and data), its failure split and its method."""

    plan: RepairPlan
    problem: Problem
    split: FailureSplit
    repairer: Repairer
    tasks: dict[int, RepairTask] = dataclasses.field(default_factory=dict, repr=False)

    def task(self, seed: int | None = None) -> RepairTask:
        """The task every method is given, built once per seed (``seed`` in place of the plan's: a
        comparison's other seeds)."""
        seed = self.plan.seed if seed is None else seed
        if seed not in self.tasks:
            config = replace(self.plan.task, device=str(self.problem.device), seed=seed)
            self.tasks[seed] = make_task(self.problem.model, self.problem.record, self.problem.data, self.split, config)
        return self.tasks[seed]

    def for_method(self, method: str, log: Say | None = None) -> Prepared:
        """The same problem, failures and tasks with ``method`` (its settings check made here)."""
        plan = replace(self.plan, method=method)
        return Prepared(plan, self.problem, self.split, _checked_repairer(plan, self.problem, self.split, log),
                        self.tasks)

    def resolved(self) -> dict:
        """What a resumed repair must share with the interrupted one: the plan and what it was made on."""
        return self.plan.record() | {"processes": distributed.launch_size(), "model": self.problem.fingerprint,
                                     "data_fingerprint": self.problem.data.fingerprint,
                                     "failures_sha256": self.split.digest(), "budget": asdict(self.repairer.budget)}


def prepare(plan: RepairPlan, log: Say | None = None, note: Say | None = None) -> Prepared:
    """``plan`` loaded and checked before any work: the model and its data (checked to fit), the
    failure split (``plan.failures`` checked to be this model's, or chosen now; a shortfall said
    through ``note``), and the method with the settings check it makes on this model and split;
    ``log`` receives the method's progress lines."""
    problem = load_problem(plan.checkpoint, plan.data, corruption=plan.task.corruption,
                           corruption_dir=plan.corruption_dir, field=plan.field, device=plan.task.device,
                           batch_size=plan.batch_size, amp=plan.task.amp, channels_last=plan.task.channels_last)
    split = problem.failures(plan.failures, plan.count, plan.seed, plan.protocol, plan.holdout, plan.test_validation)
    for line in ([] if plan.failures or note is None else split.notes()):
        note(line)
    if plan.localization:
        plan = replace(plan, settings=replace(plan.settings, block=_localised_block(plan.localization, problem, split)))
    return Prepared(plan, problem, split, _checked_repairer(plan, problem, split, log))


def _checked_repairer(plan: RepairPlan, problem: Problem, split: FailureSplit, log: Say | None) -> Repairer:
    """The plan's method with its settings and budget, checked on this model and split before any work."""
    repairer = get_repairer(plan.method, plan.settings, plan.budget, log)
    height, width, channels = problem.record.input_shape
    repairer.check(problem.model, (channels, height, width), split)
    return repairer


def run_plan(prepared: Prepared, resume: bool = False, estimate: bool = True, seed: int | None = None,
             before: np.ndarray | None = None,
             say: Say = lambda line: print(line, file=sys.stderr, flush=True)) -> tuple[RepairResult, dict]:
    """Repair as ``prepared`` says; with ``plan.out``, save the repaired model there, working in
    ``<out>.work`` (``resume``: continue an interrupted run from it, refused if anything in the plan
    differs; a stale one is replaced, said through ``say``). ``estimate``: time a few steps of each
    phase first; ``seed``: the task's seed in place of the plan's (a comparison's runs; nothing
    written); ``before``: the original's test predictions, when known. The report carries the plan
    whole (``report["plan"]``)."""
    plan, repairer = prepared.plan, prepared.repairer
    if seed is not None:
        plan = replace(plan, task=replace(plan.task, seed=seed), out=None)
    if plan.out is None:
        return run_repair(repairer, prepared.task(plan.seed), None, plan.checkpoint, before, estimate=estimate,
                          plan=plan.record())
    work = plan.work
    if distributed.writes_files():
        replace_stale(work, resume, say, "the work folder")
    distributed.barrier()  # no process reads the work folder before a stale one is gone
    _check_work(work, prepared.resolved(), resume)
    with RunTime(work) as timer:
        task = prepared.task()
        repairer.work_dir = work
        result, report = run_repair(repairer, task, plan.out, plan.checkpoint, run_time=timer, estimate=estimate,
                                    plan=plan.record())
    distributed.barrier()  # every process is done with the work folder
    if distributed.writes_files():
        shutil.rmtree(work, ignore_errors=True)
    return result, report


def dry_run(prepared: Prepared) -> dict:
    """The estimated seconds per phase of the plan's repair, with and without the block-input cache,
    and the peak memory, from a few timed steps; nothing is repaired."""
    plan = prepared.plan
    task = prepared.task()
    estimate = get_repairer(plan.method, plan.settings, plan.budget).estimate(task)
    uncached = replace(task, config=replace(task.config, prefix_cache=False), views={})
    without = get_repairer(plan.method, plan.settings, plan.budget).estimate(uncached) \
        if task.config.prefix_cache else estimate
    statuses = [view.status for view in task.views.values()]
    cache = first_off(*statuses) if statuses else (
        "off: the method trains no single block" if task.config.prefix_cache else "off: turned off (--no-prefix-cache)")
    return {"dry_run": True, "method": plan.method, "estimate_seconds": {k: round(v, 3) for k, v in estimate.items()},
            "total_seconds": round(sum(estimate.values()), 3),
            "estimate_seconds_without_cache": {k: round(v, 3) for k, v in without.items()},
            "total_seconds_without_cache": round(sum(without.values()), 3),
            "prefix_cache": cache, "peak_memory_mb": round(peak_memory_mb()),
            "fit_rows": int(len(task.fit_indices)), "val_rows": int(len(task.val_indices)), "plan": plan.record()}


def _localised_block(path: str, problem: Problem, split: FailureSplit) -> str:
    """The block chosen by the ``localize --out`` report in ``path``, if it was made for this model
    and these failures."""
    report = LocalizationReport.load(path)
    made_for = report.extra or {}
    model, failures = problem.fingerprint, split.digest()
    if made_for.get("model_fingerprint") != model or made_for.get("failures_sha256") != failures:
        raise ArchRepairError(f"--localization {path!r} was made for another model or other failures (model "
                              f"{made_for.get('model_fingerprint')}, failures {made_for.get('failures_sha256')}; here "
                              f"{model}, {failures}); localise again with these --failures")
    return report.chosen


def _check_work(work: Path, resolved: dict, resume: bool) -> None:
    saved = work / "settings.json"
    if resume and saved.exists():
        check_same_settings(json.loads(saved.read_text()), json_ready(resolved), f"the repair in {str(work)!r}")
    work.mkdir(parents=True, exist_ok=True)
    write_text_atomically(saved, json.dumps(json_ready(resolved), indent=1, default=str))
