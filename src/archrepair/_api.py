"""The public functions: a checkpoint and its failures in, a localisation, a repair or a
comparison out. A repair is a :class:`~archrepair.plan.RepairPlan`, built here from keyword
arguments as the command line builds it from options, and run by the same functions.

Example:
    >>> import archrepair
    >>> result, report = archrepair.repair("runs/r18", "runs/fail.json", out="runs/r18-fixed")  # doctest: +SKIP
    >>> report["eval_change_points"], report["kept"]                                           # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from torch import nn

from ._comparison import Comparison, compare_methods
from ._localize import LocalizationReport, LocalizeConfig
from ._checks import PATH, argument, argument_list, check_output
from ._repair import DEFAULT_METHOD, RepairResult, RepairSettings, TaskConfig, list_repairers
from ._repair.report import RepairReport
from .budget import Budget
from .data.field import field_path
from .in_memory import stage
from .errors import ArchRepairTypeError, ArchRepairValueError
from .plan import RepairPlan, prepare, run_plan
from .problem import check_common, load_problem


def localize(checkpoint: str | Path, failures: str | Path | None = None, *, data: str | None = None,
             count: int = 1000, seed: int = 0, train_examples: int | None = 1000, blocks: list[str] | None = None,
             config: LocalizeConfig | None = None, device: str = "auto") -> LocalizationReport:
    """The block most to blame for a checkpoint's failures (``failures``: a split file; default:
    ``count`` test failures chosen with ``seed``), measured on ``D_fail`` plus ``train_examples``
    training examples (0 or ``None``: all of them); ``config`` picks the localiser and its thresholds."""
    check_common("localize", checkpoint=checkpoint, failures=failures, data=data, count=count, seed=seed,
                  device=device)
    argument("localize", "train_examples", train_examples, int, "a whole number >= 0 (0: all)", optional=True, low=0)
    argument_list("localize", "blocks", blocks, "a list of block names", optional=True)
    argument("localize", "config", config, LocalizeConfig, "a LocalizeConfig", optional=True)
    problem = load_problem(checkpoint, data, device=device)
    return problem.localize(problem.failures(failures, count, seed), train_examples, seed, blocks, config, failures)


def make_plan(checkpoint: str | Path | nn.Module, failures: str | Path | None = None, *,
              method: str = DEFAULT_METHOD, out: str | Path | None = None, data=None,
              field: str | Path | None = None, count: int = 1000, settings: RepairSettings | None = None,
              task: TaskConfig | None = None, budget: Budget | None = None, overwrite: bool = False,
              resume: bool = False, model_info: dict | None = None, function: str = "make_plan") -> RepairPlan:
    """The :class:`~archrepair.plan.RepairPlan` of :func:`repair`'s arguments, checked (``out`` against
    the inputs, ``overwrite`` and ``resume``): the same plan the command line builds from its options.
    A ``checkpoint`` given as an ``nn.Module`` (with ``data`` in memory) is staged first
    (:func:`~archrepair.in_memory.stage`, ``model_info`` its ``classes``, ``mean``, ``std``, ``blocks``)
    in ``<out>.input``, or in a temporary folder without ``out``."""
    in_memory = isinstance(checkpoint, nn.Module)
    paths = {} if in_memory else {"checkpoint": checkpoint, "data": data}  # in memory: checked by stage()
    check_common(function, **paths, failures=failures, count=count, settings=settings, task=task, budget=budget)
    argument(function, "method", method, str, "a registered method's name", choices=list_repairers())
    argument(function, "out", out, PATH, "a folder path", optional=True)
    argument(function, "field", field, PATH, "a field set's path", optional=True)
    argument(function, "overwrite", overwrite, bool, "True or False")
    argument(function, "resume", resume, bool, "True or False")
    argument(function, "model_info", model_info, dict, 'a dict of "classes", "mean", "std", "blocks"', optional=True)
    if resume and out is None:
        raise ArchRepairValueError(f"{function}(): resume=True continues the repair written to out; give out")
    if model_info and not in_memory:
        raise ArchRepairValueError(f"{function}(): model_info describes a model given in memory; a checkpoint "
                                   "folder has its own record")
    if out is not None:
        out = check_output(out, [None if in_memory else checkpoint, failures,
                                 field_path(str(field)) if field else None], "folder", overwrite, resume,
                           option="out", resumable=True)
    if in_memory:
        if data is None or isinstance(data, (str, Path)):
            raise ArchRepairValueError(f"{function}(): a model given in memory needs its data in memory too (arrays, "
                                       "tensors or Datasets: see archrepair.in_memory)")
        unknown = set(model_info or {}) - {"classes", "mean", "std", "blocks"}
        if unknown:
            raise ArchRepairValueError(f"{function}(): model_info takes classes, mean, std, blocks; got "
                                       f"{sorted(unknown)[0]!r}")
        folder = out.with_name(out.name + ".input") if out is not None else tempfile.mkdtemp(prefix="archrepair-")
        checkpoint, data = stage(checkpoint, data, folder, **(model_info or {}))
    return RepairPlan(checkpoint, method, settings or RepairSettings(), budget or Budget(), task or TaskConfig(),
                      data, failures, field, count=count, out=out)


def repair(checkpoint: str | Path | nn.Module, failures: str | Path | None = None, *,
           method: str = DEFAULT_METHOD, out: str | Path | None = None, data=None, field: str | Path | None = None,
           count: int = 1000, settings: RepairSettings | None = None, task: TaskConfig | None = None,
           budget: Budget | None = None, log: Callable[[str], None] | None = None, overwrite: bool = False,
           resume: bool = False, model_info: dict | None = None) -> tuple[RepairResult, RepairReport]:
    """Repair a checkpoint with ``method`` on its failures (a split file, or ``count`` chosen with
    ``task.seed``; with ``field``, the failures of a field set, :mod:`archrepair.data.field`),
    evaluate before and after on the same test examples, and, with ``out``, save the repaired model
    there (the input is never written to; an existing non-empty ``out`` only with ``overwrite``: the
    files written replace their namesakes; ``resume`` continues an interrupted repair from
    ``<out>.work``). ``task.device`` ``auto`` (the default) runs on the GPU when there is one.
    ``checkpoint`` may be the ``nn.Module`` itself, with ``data`` as arrays, tensors or Datasets
    (:mod:`archrepair.in_memory`; ``model_info``: ``classes``, ``mean``, ``std``, ``blocks``).
    Returns the result (``result.model``: the repaired ``nn.Module``) and the typed report
    (:class:`~archrepair._repair.report.RepairReport`; ``report.to_dict()`` is ``report.json``), whose
    ``plan`` is the repair as run (:func:`make_plan`, the plan the command line builds)."""
    if log is not None and not callable(log):
        raise ArchRepairTypeError(f"repair(): log takes a function of one text or None, got {type(log).__name__}")
    plan = make_plan(checkpoint, failures, method=method, out=out, data=data, field=field, count=count,
                     settings=settings, task=task, budget=budget, overwrite=overwrite, resume=resume,
                     model_info=model_info, function="repair")
    result, report = run_plan(prepare(plan, log), resume)
    return result, RepairReport.from_dict(report)


def compare(checkpoint: str | Path, methods: list[str], failures: str | Path | None = None, *, seeds: int = 3,
            data: str | None = None, field: str | Path | None = None, count: int = 1000, failure_seed: int = 0,
            settings: RepairSettings | None = None, task: TaskConfig | None = None, budget: Budget | None = None,
            **callbacks) -> Comparison:
    """Every method in ``methods`` on the same failures (a split file, or ``count`` chosen with
    ``failure_seed``; with ``field``, a field set's) with ``budget``, over seeds ``0..seeds-1``: the
    plan :func:`make_plan` builds, once per method and seed; ``callbacks``: ``on_row``, ``on_error``,
    ``previous`` of :func:`~archrepair._comparison.compare_methods`."""
    argument_list("compare", "methods", methods, "a list of registered methods' names", choices=list_repairers())
    argument("compare", "seeds", seeds, int, "a whole number of seeds >= 1", low=1)
    argument("compare", "failure_seed", failure_seed, int, "a whole number >= 0", low=0)
    unknown = set(callbacks) - {"on_row", "on_error", "previous"}
    if unknown:
        raise ArchRepairTypeError(f"compare(): unknown argument {sorted(unknown)[0]!r}; it takes on_row, on_error, "
                                  "previous besides its named ones")
    check_common("compare", task=task)
    task = replace(task or TaskConfig(), seed=failure_seed)
    plan = make_plan(checkpoint, failures, method=methods[0], data=data, field=field, count=count, settings=settings,
                     task=task, budget=budget, function="compare")
    return compare_methods(prepare(plan), methods, list(range(seeds)), **callbacks)
