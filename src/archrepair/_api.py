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
from ._repair import DEFAULT_METHOD, RepairResult, RepairSettings, TaskConfig, get_repairer, make_task
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
from .errors import ArchRepairError
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
    problem = load_problem(checkpoint, data, device=device)
    return problem.localize(problem.failures(failures, count, seed), train_examples, seed, blocks, config, failures)


def repair(checkpoint: str | Path, failures: str | Path | None = None, *, method: str = DEFAULT_METHOD,
           out: str | Path | None = None, data: str | None = None, count: int = 1000,
           settings: RepairSettings | None = None, task: TaskConfig | None = None, budget: Budget | None = None,
           log: Callable[[str], None] | None = None) -> tuple[RepairResult, dict]:
    """Repair a checkpoint with ``method`` on its failures (a split file, or ``count`` chosen with
    ``task.seed``), evaluate before and after on the same test examples, and, with ``out``, save
    the repaired model there (the input is never written to). Returns the result and the report."""
    task = task or TaskConfig()
    problem = load_problem(checkpoint, data, corruption=task.corruption, device=task.device, amp=task.amp,
                           channels_last=task.channels_last)
    if out is not None and Path(out).resolve() == Path(checkpoint).resolve():
        raise ArchRepairError("the output folder is the input checkpoint; choose another one")
    split = problem.failures(failures, count, task.seed)
    built = make_task(problem.model, problem.record, problem.data, split, replace(task, device=str(problem.device)))
    return run_repair(get_repairer(method, settings, budget, log), built, out, checkpoint)


def compare(checkpoint: str | Path, methods: list[str], failures: str | Path | None = None, *, seeds: int = 3,
            data: str | None = None, count: int = 1000, failure_seed: int = 0, settings: RepairSettings | None = None,
            task: TaskConfig | None = None, budget: Budget | None = None, **callbacks) -> Comparison:
    """Every method in ``methods`` on the same failures with ``budget``, over seeds ``0..seeds-1``;
    ``callbacks``: ``on_row``, ``on_error``, ``previous`` of :func:`compare_methods`."""
    task = task or TaskConfig()
    problem = load_problem(checkpoint, data, corruption=task.corruption, device=task.device, amp=task.amp,
                           channels_last=task.channels_last)
    split = problem.failures(failures, count, failure_seed)
    return compare_methods(problem.model, problem.record, problem.data, split, methods, list(range(seeds)), budget,
                           settings, replace(task, device=str(problem.device)), checkpoint, **callbacks)
