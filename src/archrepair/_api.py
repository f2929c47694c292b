"""The public functions: a checkpoint and its failures in, a localisation, a repair or a
comparison out. The command line does the same through these pieces (plus output checks).

Example:
    >>> import archrepair
    >>> result, report = archrepair.repair("runs/r18", "runs/fail.json", out="runs/r18-fixed")  # doctest: +SKIP
    >>> report["eval_change_points"], report["kept"]                                           # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ._comparison import Comparison, compare_methods
from ._localize import LocalizationReport, LocalizeConfig
from ._localize import localize as localize_batches
from ._checks import PATH, argument, argument_list, check_output
from ._repair import DEFAULT_METHOD, RepairResult, RepairSettings, TaskConfig, get_repairer, list_repairers, make_task
from ._repair.pipeline import run_repair
from ._repair.task import test_validation_share
from .base_model import make_loader
from .budget import Budget
from .checkpoint import ModelRecord, load_checkpoint, model_fingerprint
from .data import BatchLoader, FailureSplit, ImageData, load_data, select_failures
from .data.corrupted import corrupted_test
from .data.field import FIELD_VALIDATION, field_data, field_warnings
from .data.repair_set import repair_set
from .device import resolve_device
from .errors import ArchRepairError, ArchRepairTypeError, ArchRepairValueError
from .evaluate import predict_logits


@dataclass
class Problem:
    """A checkpoint with the data it is judged on: the model (eval mode, on ``device``), its record,
    the data (its test split corrupted, for the robustness scenario, or replaced by a field set, with
    ``field`` what was found there, :func:`~archrepair.data.field.field_data`), and the weights'
    fingerprint."""

    checkpoint: str
    model: torch.nn.Module
    record: ModelRecord
    data: ImageData
    device: torch.device
    fingerprint: str
    batch_size: int = 256
    amp: bool = False
    channels_last: bool = False
    field: dict | None = None

    def test_predictions(self, description: str = "predicting", data: ImageData | None = None) -> np.ndarray:
        """Predicted labels ``(N_test,)`` over the whole test split (of ``data``; default: the problem's)."""
        self.model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        loader = make_loader(data or self.data, "test", self.record, batch_size=self.batch_size, device=self.device,
                             channels_last=self.channels_last)
        return predict_logits(self.model, loader, self.amp, progress=description).argmax(1).numpy()

    def load_split(self, path: str | Path, own: bool = True) -> FailureSplit:
        """The failure split in file ``path``, checked to be whole and to come from this data; with
        ``own``, from this model's failures (or those of a model it was repaired from) too."""
        split = FailureSplit.load(path)
        if (split.source == "field") != (self.field is not None):
            given = "was made on a field set: give its --field" if split.source == "field" else \
                "was not made on a field set: leave out --field"
            raise ArchRepairError(f"failure split {str(path)!r} {given}")
        split.check(repr(str(path)), len(self.data.y_test))
        if split.data_fingerprint and split.data_fingerprint != self.data.fingerprint:
            raise ArchRepairError(f"failure split {str(path)!r} was made on other data (fingerprint "
                                  f"{split.data_fingerprint}, this data {self.data.fingerprint}); use the data it was made from")
        known = {self.fingerprint, *self.record.lineage}
        if own and split.model_fingerprint and split.model_fingerprint not in known:
            raise ArchRepairError(f"failure split {str(path)!r} holds the failures of another model (fingerprint "
                                  f"{split.model_fingerprint}, this model {self.fingerprint}); make this model's split "
                                  f"with `archrepair failures {self.checkpoint}`")
        return split

    def failures(self, path: str | Path | None = None, count: int = 1000, seed: int = 0, protocol: str = "heldout",
                 holdout: float = 0.5, validation: float | None = None) -> FailureSplit:
        """The split in file ``path`` (checked, :meth:`load_split`), or ``count`` of this model's
        test failures chosen now with ``seed`` under ``protocol`` (:func:`select_failures`), with a
        ``validation`` share of the test set held out when the model's training hold-out is unknown
        (``None``: :func:`test_validation_share` decides)."""
        if path:
            return self.load_split(path)
        if self.field is not None:
            return self._field_split(count, seed, protocol, holdout, validation)
        share = test_validation_share(self.record, self.data, protocol, validation)
        split = select_failures(self.test_predictions("finding failures"), self.data.y_test, count, seed, protocol,
                                holdout, share)
        split.data_spec, split.data_fingerprint = self.data.spec, self.data.fingerprint
        split.model_fingerprint = self.fingerprint
        return split

    def _field_split(self, count: int, seed: int, protocol: str, holdout: float, validation: float | None) -> FailureSplit:
        """The field set split into a fit part (its failures: ``D_fail``; the images the original gets
        right there, ``extra["fit_correct"]``, are retain rows), a validation part and a hold-out, seeded,
        stratified, exact duplicates on one side; the original's home test predictions recorded for
        judging what a repair breaks at home."""
        if protocol != "heldout":
            raise ArchRepairError("a field set is judged on its own hold-out: use --protocol heldout with --field")
        share = FIELD_VALIDATION if validation is None else validation
        predictions = self.test_predictions("finding field failures")
        split = select_failures(predictions, self.data.y_test, count, seed, protocol, holdout, share,
                                groups=np.unique(self.field["hashes"], return_inverse=True)[1],
                                named=f"the field set {self.field['spec']!r} (--field)")
        split.source, split.data_spec, split.data_fingerprint = "field", self.data.spec, self.data.fingerprint
        split.model_fingerprint = self.fingerprint
        record = {k: v for k, v in self.field.items() if k != "hashes"}
        record["warnings"] = field_warnings(split, predictions, self.data.y_test, list(self.data.class_names))
        fit_part = np.setdiff1d(np.arange(len(predictions)), split.holdout_indices + split.validation_indices)
        split.extra = {"field": record, "home_predictions": self.test_predictions(
            "predicting the home test set", self.data.home).astype(int).tolist(),
            "fit_correct": fit_part[predictions[fit_part] == self.data.y_test[fit_part]].tolist()}
        return split

    def localize(self, split: FailureSplit, train_examples: int = 1000, seed: int = 0, blocks: list[str] | None = None,
                 config: LocalizeConfig | None = None, failure_split: str | Path | None = None) -> LocalizationReport:
        """The localisation on ``D_fail`` plus ``train_examples`` training examples (seeded sample),
        with what it was made from in ``extra`` (``repair --localization`` checks it)."""
        rows = repair_set(self.data, split, train_examples, seed)
        loader = BatchLoader(rows.x, rows.y, self.record.mean, self.record.std, batch_size=self.batch_size,
                             device=self.device, channels_last=self.channels_last)
        height, width, channels = self.record.input_shape
        report = localize_batches(self.model, loader, (channels, height, width), blocks, config)
        report.extra = {"checkpoint": self.checkpoint, "model_fingerprint": self.fingerprint, "data": self.data.spec,
                        "data_fingerprint": self.data.fingerprint, "failures": len(split.fail_indices),
                        "failures_sha256": split.digest(), "failure_split": str(failure_split) if failure_split else None,
                        "train_examples": len(rows.train_indices), "seed": seed}
        return report


def load_problem(checkpoint: str | Path, data: str | None = None, *, corruption: dict | None = None,
                 corruption_dir: str | None = None, field: str | None = None, device: str = "auto",
                 batch_size: int = 256, amp: bool = False, channels_last: bool = False) -> Problem:
    """The checkpoint and the data ``data`` (a data spec; default: the data it was trained on),
    checked to fit; ``corruption`` ``{"name", "severity", "seed"}`` replaces the test split by its
    corrupted copy (generated, or read from ``corruption_dir``); ``field`` (a field spec,
    :mod:`archrepair.data.field`) replaces it by the images a user collected."""
    _check_common("load_problem", checkpoint=checkpoint, data=data, device=device)
    argument("load_problem", "corruption", corruption, dict, 'a table {"name", "severity"[, "seed"]}', optional=True)
    argument("load_problem", "corruption_dir", corruption_dir, PATH, "a folder path", optional=True)
    argument("load_problem", "field", field, PATH, "a field set's path", optional=True)
    argument("load_problem", "batch_size", batch_size, int, "a whole number >= 1", low=1)
    argument("load_problem", "amp", amp, bool, "True or False")
    argument("load_problem", "channels_last", channels_last, bool, "True or False")
    if corruption is not None and not {"name", "severity"} <= set(corruption):
        raise ArchRepairValueError(f'load_problem(): corruption takes a table with "name" and "severity", got '
                                   f"{sorted(corruption)}")
    resolved = resolve_device(device)
    model, record = load_checkpoint(checkpoint, resolved)
    images = load_data(data or record.data.get("spec", ""))
    record.check_fits(images)
    found = None
    if corruption and field:
        raise ArchRepairError("give --corruption or --field, not both")
    if corruption:
        images = corrupted_test(images, corruption["name"], corruption["severity"], corruption.get("seed", 0),
                                corruption_dir)
    if field:
        images, found = field_data(images, field)
    return Problem(str(checkpoint), model, record, images, resolved, model_fingerprint(checkpoint), batch_size, amp,
                   channels_last, found)


def localize(checkpoint: str | Path, failures: str | Path | None = None, *, data: str | None = None,
             count: int = 1000, seed: int = 0, train_examples: int = 1000, blocks: list[str] | None = None,
             config: LocalizeConfig | None = None, device: str = "auto") -> LocalizationReport:
    """The block most to blame for a checkpoint's failures (``failures``: a split file; default:
    ``count`` test failures chosen with ``seed``), measured on ``D_fail`` plus ``train_examples``
    training examples; ``config`` picks the localiser and its thresholds."""
    _check_common("localize", checkpoint=checkpoint, failures=failures, data=data, count=count, seed=seed,
                  device=device)
    argument("localize", "train_examples", train_examples, int, "a whole number >= 0", low=0)
    argument_list("localize", "blocks", blocks, "a list of block names", optional=True)
    argument("localize", "config", config, LocalizeConfig, "a LocalizeConfig", optional=True)
    problem = load_problem(checkpoint, data, device=device)
    return problem.localize(problem.failures(failures, count, seed), train_examples, seed, blocks, config, failures)


def repair(checkpoint: str | Path, failures: str | Path | None = None, *, method: str = DEFAULT_METHOD,
           out: str | Path | None = None, data: str | None = None, count: int = 1000,
           settings: RepairSettings | None = None, task: TaskConfig | None = None, budget: Budget | None = None,
           log: Callable[[str], None] | None = None, overwrite: bool = False) -> tuple[RepairResult, dict]:
    """Repair a checkpoint with ``method`` on its failures (a split file, or ``count`` chosen with
    ``task.seed``), evaluate before and after on the same test examples, and, with ``out``, save
    the repaired model there (the input is never written to; an existing non-empty ``out`` only with
    ``overwrite``: the files written replace their namesakes). Returns the result and the report."""
    _check_common("repair", checkpoint=checkpoint, failures=failures, data=data, count=count, settings=settings,
                  task=task, budget=budget)
    argument("repair", "method", method, str, "a registered method's name", choices=list_repairers())
    argument("repair", "out", out, PATH, "a folder path", optional=True)
    argument("repair", "overwrite", overwrite, bool, "True or False")
    if log is not None and not callable(log):
        raise ArchRepairTypeError(f"repair(): log takes a function of one text or None, got {type(log).__name__}")
    if out is not None:
        check_output(out, [checkpoint, failures], "folder", overwrite, option="out")
    task = task or TaskConfig()
    problem = load_problem(checkpoint, data, corruption=task.corruption, device=task.device, amp=task.amp,
                           channels_last=task.channels_last)
    split = problem.failures(failures, count, task.seed)
    built = make_task(problem.model, problem.record, problem.data, split, replace(task, device=str(problem.device)))
    return run_repair(get_repairer(method, settings, budget, log), built, out, checkpoint)


def compare(checkpoint: str | Path, methods: list[str], failures: str | Path | None = None, *, seeds: int = 3,
            data: str | None = None, count: int = 1000, failure_seed: int = 0, settings: RepairSettings | None = None,
            task: TaskConfig | None = None, budget: Budget | None = None, **callbacks) -> Comparison:
    """Every method in ``methods`` on the same failures with ``budget``, over seeds ``0..seeds-1``;
    ``callbacks``: ``on_row``, ``on_error``, ``previous`` of :func:`compare_methods`."""
    _check_common("compare", checkpoint=checkpoint, failures=failures, data=data, count=count, settings=settings,
                  task=task, budget=budget)
    argument_list("compare", "methods", methods, "a list of registered methods' names", choices=list_repairers())
    argument("compare", "seeds", seeds, int, "a whole number of seeds >= 1", low=1)
    argument("compare", "failure_seed", failure_seed, int, "a whole number >= 0", low=0)
    unknown = set(callbacks) - {"on_row", "on_error", "previous"}
    if unknown:
        raise ArchRepairTypeError(f"compare(): unknown argument {sorted(unknown)[0]!r}; it takes on_row, on_error, "
                                  "previous besides its named ones")
    task = task or TaskConfig()
    problem = load_problem(checkpoint, data, corruption=task.corruption, device=task.device, amp=task.amp,
                           channels_last=task.channels_last)
    split = problem.failures(failures, count, failure_seed)
    return compare_methods(problem.model, problem.record, problem.data, split, methods, list(range(seeds)), budget,
                           settings, replace(task, device=str(problem.device)), checkpoint, **callbacks)


def _check_common(function: str, **given) -> None:
    """The arguments several API functions share, checked at the boundary (:func:`~archrepair._checks.argument`)."""
    rules = {"checkpoint": (PATH, "a checkpoint folder's path", False, None),
             "failures": (PATH, "a failure split file's path", True, None),
             "data": (str, "a data spec (KIND[:PATH])", True, None),
             "count": (int, "a whole number of failures >= 1", False, 1),
             "seed": (int, "a whole number >= 0", False, 0),
             "device": (str, "auto, cpu or cuda[:N]", False, None),
             "settings": (RepairSettings, "a RepairSettings", True, None),
             "task": (TaskConfig, "a TaskConfig", True, None),
             "budget": (Budget, "a Budget (archrepair.Budget(seconds=..., epochs=...))", True, None)}
    for name, value in given.items():
        kinds, takes, optional, low = rules[name]
        argument(function, name, value, kinds, takes, optional=optional, low=low)
