"""A checkpoint with the data it is judged on (:class:`Problem`): loaded and checked to fit by
:func:`load_problem`, the one place every door (the CLI, the Python API, a study, a plan) loads them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ._checks import PATH, argument
from ._localize import LocalizationReport, LocalizeConfig
from ._localize import localize as localize_batches
from ._repair import RepairSettings, TaskConfig
from ._repair.task import test_validation_share
from .base_model import make_loader
from .checkpoint import ModelRecord, load_checkpoint, model_fingerprint
from .data import BatchLoader, FailureSplit, ImageData, load_data, select_failures
from .data.corrupted import corrupted_test
from .data.field import FIELD_VALIDATION, field_data, field_warnings
from .data.repair_set import repair_set
from .device import resolve_device
from .budget import Budget
from .errors import ArchRepairError, ArchRepairValueError
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

    def localize(self, split: FailureSplit, train_examples: int | None = 1000, seed: int = 0, blocks: list[str] | None = None,
                 config: LocalizeConfig | None = None, failure_split: str | Path | None = None) -> LocalizationReport:
        """The localisation on ``D_fail`` plus ``train_examples`` training examples (seeded sample; 0 or
        ``None``: all of them), with what it was made from in ``extra`` (``repair --localization`` checks it)."""
        rows = repair_set(self.data, split, train_examples or None, seed)
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
    check_common("load_problem", checkpoint=checkpoint, data=data, device=device)
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


def check_common(function: str, **given) -> None:
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
