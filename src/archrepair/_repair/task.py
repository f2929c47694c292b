"""What every repair method is given: the model, its data, ``D_fail``, ``D_repair`` and its splits,
built from one :class:`TaskConfig` that every report records whole."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import distributed
from ..checkpoint import ModelRecord
from ..data import BatchLoader, FailureSplit, ImageData, stratified_split
from ..data.loader import FeatureRows
from ..data.splits import indices_digest
from ..device import resolve_device
from ..errors import ArchRepairError
from ..data.repair_set import RepairSet, repair_set
from ..evaluate import predict_logits
from ..train import accuracy_and_loss
from .block_inputs import BlockView
from .keep import KEEP_LEVEL, MIN_SPARE_ROWS, KeepRows


@dataclass
class TaskConfig:
    """How a repair task is built and run, the same for every method it is given to.

    ``train_examples``: training examples joined to ``D_fail`` in ``D_repair`` (0 or ``None``: all);
    ``val_fraction``: the share of them held out for validation; ``seed``: draws the sample and its
    splits and seeds the method; ``thin_validation``: under the ``paper`` protocol, drop from the
    validation examples the share of the base model's failures that ``D_fail`` took from the
    deployment data (the paper's evaluation split is built that way; under ``heldout`` the
    validation examples are used as they are); ``fail_weight``: how many times each failure counts per
    training epoch; ``corruption``: ``{"name", "severity", "seed"}`` of the distribution shift the
    failures come from (validation then uses the held-out examples clean and shifted), or ``None``;
    ``device`` (``auto``: the GPU when there is one; :func:`make_task` resolves it), ``channels_last``,
    ``amp``: where and how the models run. ``prefix_cache``: block-level
    methods run the frozen part before their block once per example and train on its cached output
    (:mod:`.block_inputs`); ``cache_memory``: bytes the cache may hold in memory before it spills to
    a memory-mapped file. ``keep_level``: ``α`` of the final choice between the original and the
    candidate under the ``heldout`` protocol (:mod:`.keep`; 1 keeps every candidate)."""

    train_examples: int | None = 5000
    val_fraction: float = 0.2
    seed: int = 0
    thin_validation: bool = True
    fail_weight: float = 1.0
    corruption: dict | None = None
    device: str = "auto"
    channels_last: bool = False
    amp: bool = False
    prefix_cache: bool = True
    cache_memory: int = 4 * 2**30
    keep_level: float = KEEP_LEVEL

    def __post_init__(self) -> None:
        if not 0 < self.keep_level <= 1:
            raise ArchRepairError(f"the keep level must be in (0, 1], got {self.keep_level}")
        if self.cache_memory < 0:
            raise ArchRepairError(f"the cache memory must be 0 bytes or more, got {self.cache_memory}")
        if self.fail_weight < 0:
            raise ArchRepairError(f"the failure weight must be 0 or more, got {self.fail_weight}")
        if not 0 <= self.val_fraction < 1:
            raise ArchRepairError(f"the validation fraction must be in [0, 1), got {self.val_fraction}")
        if self.train_examples is not None and self.train_examples < 0:
            raise ArchRepairError(f"the number of training examples must be 0 or more, got {self.train_examples}")
        if self.train_examples == 0:  # as everywhere: all of them
            self.train_examples = None
        self.device = str(self.device)


@dataclass
class RepairTask:
    """One repair problem. ``repair`` is ``D_repair = D_fail ∪ D_train sample``; ``fit_indices``
    (rows of ``repair`` used for training: all of ``D_fail`` and most of the training sample) and
    ``val_indices`` (training examples held out for early stopping and for choosing between the
    original and the repaired block; never failures, and where known never seen by the base
    model, so that the choice measures how well a model generalises rather than how many of the
    failures it has memorised; thinned of the base model's failures like the evaluation split, see
    :func:`make_task`) and the rows dropped from it partition it (with the reserved keep rows, if any);
    ``search_train`` and ``search_val`` halve ``fit_indices`` for the architecture search; ``keep``:
    the rows the final choice decides on (:mod:`.keep`; ``None`` under the ``paper`` protocol). Batches
    land on ``device``; ``amp``: every method's forward passes run in mixed precision (float16 on
    CUDA, bfloat16 on CPU)."""

    model: nn.Module
    record: ModelRecord
    data: ImageData
    split: FailureSplit
    repair: RepairSet
    fit_indices: np.ndarray
    val_indices: np.ndarray
    search_train: np.ndarray
    search_val: np.ndarray
    config: TaskConfig = field(default_factory=TaskConfig)
    keep: KeepRows | None = None
    views: dict = field(default_factory=dict, repr=False, compare=False)
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def device(self) -> torch.device:
        return torch.device(self.config.device)

    @property
    def channels_last(self) -> bool:
        return self.config.channels_last

    @property
    def fail_weight(self) -> float:
        return self.config.fail_weight

    @property
    def amp(self) -> bool:
        return self.config.amp

    def schedule(self, config, **changes):
        """``config`` (a training or search schedule) with ``changes`` and this task's mixed precision:
        the one place a method's schedule learns ``amp``."""
        return replace(config, **changes, amp=self.amp)

    def loader(self, indices: np.ndarray, batch_size: int = 256, shuffle: bool = False, augment: str = "none",
               seed_offset: int = 0, features: FeatureRows | None = None, with_rows: bool = False,
               fail_weight: float | None = None) -> BatchLoader:
        """Batches of ``repair`` rows ``indices``; a shuffled (training) loader counts each failure
        ``fail_weight`` times per epoch (``None``: the task's; :class:`FailureWeightedLoader`).
        ``features``: yield these precomputed rows (a block's cached inputs) instead of images, in
        the same batches; ``with_rows``: yield each batch's rows too (for :meth:`original_logits`).
        Spread over processes (:mod:`archrepair.distributed`), a shuffled loader yields this process's
        fixed share of ``indices`` in batches of ``batch_size / N``."""
        if shuffle and distributed.joined():
            indices = distributed.share_rows(indices, self.repair.num_failures, self.seed + seed_offset)
            batch_size = distributed.batch_share(batch_size, distributed.world().size)
        arguments = dict(indices=indices, batch_size=batch_size, shuffle=shuffle, augment=augment,
                         seed=self.seed + seed_offset, device=self.device, channels_last=self.channels_last,
                         features=features, with_rows=with_rows)
        weight = self.fail_weight if fail_weight is None else fail_weight
        if shuffle and weight != 1.0:
            return FailureWeightedLoader(self.repair.x, self.repair.y, self.record.mean, self.record.std,
                                         num_failures=self.repair.num_failures, weight=weight, **arguments)
        return BatchLoader(self.repair.x, self.repair.y, self.record.mean, self.record.std, **arguments)

    def block_view(self, block: str, work_dir: Path | None = None) -> BlockView:
        """The cached inputs of ``block`` (one view per block, shared by every phase and method
        step that trains or evaluates at it); see :class:`~.block_inputs.BlockView`."""
        if block not in self.views:
            self.views[block] = BlockView(self, block, work_dir)
        view = self.views[block]
        if view.work_dir is None and view.inputs is None:  # made by an estimate: the run's folder from now on
            view.work_dir = work_dir
        return view

    def original_logits(self) -> torch.Tensor:
        """The original model's logits ``(N, C)`` (float32, CPU) on every row of ``repair``, made once:
        over a built block-input cache (the part after the block only), else one evaluation pass."""
        if "original_logits" not in self.memo:
            built = [view for view in self.views.values() if view.inputs is not None]
            self.memo["original_logits"] = built[0].original_logits() if built else predict_logits(
                self.model, self.loader(np.arange(len(self.repair.y))), self.amp, progress="original logits")
        return self.memo["original_logits"]

    @property
    def fit_failures(self) -> np.ndarray:
        """The fit rows of ``D_fail`` (rows below ``repair.num_failures``: every failure)."""
        return self.fit_indices[self.fit_indices < self.repair.num_failures]

    @property
    def fit_others(self) -> np.ndarray:
        """The fit rows that are home training examples (neither ``D_fail`` nor field images)."""
        rows = self.fit_indices[self.fit_indices >= self.repair.num_failures]
        return np.setdiff1d(rows, self.repair.field_fit_rows)

    def validate(self, model: nn.Module) -> tuple[float, float]:
        """Accuracy in [0, 1] and mean cross-entropy of ``model`` (the whole network, on images) on
        the validation rows."""
        return accuracy_and_loss(model, self.loader(self.val_indices), self.amp)

    def localization_rows(self, limit: int | None) -> np.ndarray:
        """The fit rows to localise on: every failure, and at most ``limit`` of the other fit rows
        (a seeded sample, sorted; ``None``: all of them)."""
        failures = self.fit_failures
        others = self.fit_indices[self.fit_indices >= self.repair.num_failures]
        if limit is not None and len(others) > limit:
            others = np.sort(np.random.default_rng(self.seed + 5).choice(others, size=limit, replace=False))
        return np.concatenate([failures, others])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the model's input."""
        height, width, channels = self.record.input_shape
        return channels, height, width

    def example(self, count: int = 8) -> torch.Tensor:
        """A normalised batch of the first ``count`` repair examples, on the task's device."""
        return next(iter(self.loader(np.arange(min(count, len(self.repair.y))), batch_size=count)))[0]


class FailureWeightedLoader(BatchLoader):
    """A training loader in which each failure row (rows ``< num_failures`` of ``D_repair``) counts
    ``weight`` times per epoch: ``floor(weight)`` copies of every failure plus a seeded random
    ``weight - floor(weight)`` share of them, drawn anew each epoch (:meth:`set_epoch`); every other
    row appears once. The number of rows per epoch is the same in every epoch."""

    def __init__(self, *args, num_failures: int, weight: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if weight < 0:
            raise ValueError(f"the weight of the failures must be 0 or more, got {weight}")
        rows = self.indices.numpy()
        self.failures, self.others = rows[rows < num_failures], rows[rows >= num_failures]
        self.weight = weight
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        whole, fraction = divmod(self.weight, 1.0)
        drawn = np.random.default_rng([self.seed, epoch]).choice(
            self.failures, size=round(fraction * len(self.failures)), replace=False)
        self.indices = torch.as_tensor(np.concatenate([self.others, np.tile(self.failures, int(whole)), drawn]))


def make_task(model: nn.Module, record: ModelRecord, data: ImageData, split: FailureSplit,
              config: TaskConfig | None = None) -> RepairTask:
    """Build ``D_repair`` from ``split`` and ``config.train_examples`` training examples,
    ``config.val_fraction`` of which are held out for validation: drawn from the base model's own
    held-out split when its record says which one that was (:func:`base_validation_indices`),
    else from the sample. A split with a validation part of the test set (``validation_indices``,
    made for a model whose training hold-out is unknown, :func:`test_validation_share`) validates
    there instead, and every sampled training example is fit. The fit part (all of ``D_fail`` and the other training examples) is
    halved (stratified, seeded) for the search.

    Under the ``heldout`` protocol the task also holds the **keep rows** (:mod:`.keep`), which no
    method sees: the base model's held-out training examples that validation did not take (when at
    least ``MIN_SPARE_ROWS``), else half of the test set's validation part (the other half validates),
    else half of the validation rows (seeded, stratified; those rows are then neither fit nor
    validation rows).

    A field split (``split.source == "field"``: the test split is a field set) fits its failures and
    the fit part's images the original gets right (:func:`_with_field_fit`; the "train more" baselines
    leave both out, :attr:`RepairTask.fit_others`), and validates on the home validation rows and half
    of the field's validation part together; the other half joins the keep rows
    (:func:`_with_field_validation`).

    ``config.corruption``: the distribution shift the failures come from. The validation examples
    (and the keep rows) are then used twice, as they are and corrupted, so that the choice of model
    weighs the shifted data and the clean data alike.

    ``config.thin_validation``: build the validation split the way the evaluation split is built.
    The reported accuracy is measured on the deployment data without ``D_fail``, which removed a
    share ``q = |D_fail| / misclassified`` of the base model's failures there, so that set is
    enriched in examples the base model already gets right. The same share of the base model's
    failures among the validation examples is dropped (at random, seeded), so that early stopping
    and the choice between the original and the repaired model judge a repair the way the report will.
    """
    config = config or TaskConfig()
    config = replace(config, device=str(resolve_device(config.device)))
    seed = config.seed
    heldout = split.protocol == "heldout"
    from_field = split.source == "field"
    test_validation = np.zeros(0, dtype=np.int64) if from_field else np.asarray(split.validation_indices, dtype=np.int64)
    keep, reserved = None, np.zeros(0, dtype=np.int64)
    if len(test_validation):  # the split holds a validation part of the test set: validate there
        if heldout and len(test_validation) >= 4:
            stop_part, keep_part = _halves(data.y_test[test_validation], seed)
            keep = KeepRows(data.x_test[test_validation[keep_part]], data.y_test[test_validation[keep_part]],
                            "half of the test set's validation part", np.sort(test_validation[keep_part]))
            test_validation = np.sort(test_validation[stop_part])
        repair = repair_set(data, split, config.train_examples, seed, 0.0)
        repair = replace(repair, x=np.concatenate([repair.x, data.x_test[test_validation]]),
                         y=np.concatenate([repair.y, data.y_test[test_validation]]),
                         val_rows=len(repair.y) + np.arange(len(test_validation)))
    else:
        repair = repair_set(data, split, config.train_examples, seed, config.val_fraction,
                            base_validation_indices(record, data))
        spare = repair.spare_pool
        if heldout and len(spare) >= MIN_SPARE_ROWS:
            keep = KeepRows(data.x_train[spare], data.y_train[spare], "the base model's training hold-out", spare)
        elif heldout and len(repair.val_rows) >= 4:
            stop_part, keep_part = _halves(repair.y[repair.val_rows], seed)
            reserved = np.sort(repair.val_rows[keep_part])
            keep = KeepRows(repair.x[reserved], repair.y[reserved], "half of the validation rows",
                            repair.train_indices[reserved - repair.num_failures])
            repair = replace(repair, val_rows=np.sort(repair.val_rows[stop_part]))
    if from_field:
        repair = _with_field_fit(repair, data, np.asarray(split.extra.get("fit_correct", []), np.int64))
        repair, keep = _with_field_validation(repair, keep, data, np.asarray(split.validation_indices, np.int64), seed)
    if config.corruption is not None:
        from ..data.corruptions import corrupt

        shift = config.corruption

        def shifted(images: np.ndarray) -> np.ndarray:
            return np.asarray(corrupt(images, shift["name"], shift["severity"], shift.get("seed", 0)))

        if len(repair.val_rows):
            extra = len(repair.y) + np.arange(len(repair.val_rows))
            repair = replace(repair, x=np.concatenate([repair.x, shifted(repair.x[repair.val_rows])]),
                             y=np.concatenate([repair.y, repair.y[repair.val_rows]]),
                             val_rows=np.concatenate([repair.val_rows, extra]))
        if keep is not None:
            keep = replace(keep, x=np.concatenate([keep.x, shifted(keep.x)]), y=np.concatenate([keep.y, keep.y]),
                           shifted=True)
    val = repair.val_rows
    if config.thin_validation and split.protocol == "paper" and split.misclassified and len(val):
        val = thinned_validation(model, record, repair, val, len(split.fail_indices) / split.misclassified, seed,
                                 config.device)
    # dropped validation rows and reserved keep rows are not trained on either
    fit = np.setdiff1d(np.arange(len(repair.y)), np.concatenate([repair.val_rows, reserved]))
    half_a, half_b = stratified_split(repair.y[fit], 0.5, seed + 1)
    return RepairTask(model, record, data, split, repair, fit, val, fit[half_a], fit[half_b], config, keep=keep)


def _with_field_fit(repair: RepairSet, data: ImageData, rows: np.ndarray) -> RepairSet:
    """The field fit part's images that the original classifies correctly (``rows`` of the field
    set) appended as fit rows: what the repair should keep right on the field population."""
    repair, added = _with_field_rows(repair, data, rows)
    return replace(repair, field_fit_indices=rows, field_fit_rows=added)


def _with_field_validation(repair: RepairSet, keep: KeepRows | None, data: ImageData, rows: np.ndarray,
                           seed: int) -> tuple[RepairSet, KeepRows | None]:
    """A field split's validation part (``rows`` of the field set) halved: one half joins the home
    validation rows (early stopping and the choice between candidates weigh both populations), the
    other the keep rows."""
    if keep is not None and len(rows) >= 4:
        stop_part, keep_part = _halves(data.y_test[rows], seed)
        kept = np.sort(rows[keep_part])
        keep = replace(keep, x=np.concatenate([keep.x, data.x_test[kept]]), y=np.concatenate([keep.y, data.y_test[kept]]),
                       source=f"{keep.source} and half of the field validation part", field_indices=kept)
        rows = np.sort(rows[stop_part])
    repair, added = _with_field_rows(repair, data, rows)
    return replace(repair, val_rows=np.concatenate([repair.val_rows, added]), field_val_indices=rows,
                   field_val_rows=added), keep


def _with_field_rows(repair: RepairSet, data: ImageData, rows: np.ndarray) -> tuple[RepairSet, np.ndarray]:
    """``repair`` with the field set's ``rows`` appended, and the row numbers they took."""
    added = len(repair.y) + np.arange(len(rows))
    return replace(repair, x=np.concatenate([repair.x, data.x_test[rows]]),
                   y=np.concatenate([repair.y, data.y_test[rows]])), added


def _halves(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(early stopping, keep)``: positions of ``labels`` halved, stratified and seeded, when the keep
    rows must come out of a validation part."""
    return stratified_split(labels, 0.5, seed + 7)


def thinned_validation(model: nn.Module, record: ModelRecord, repair: RepairSet, rows: np.ndarray, share: float,
                       seed: int, device: torch.device | str = "cpu") -> np.ndarray:
    """``rows`` of ``repair`` without a random ``share`` (0..1, seeded) of those ``model`` misclassifies."""
    loader = BatchLoader(repair.x, repair.y, record.mean, record.std, indices=rows, device=torch.device(device))
    wrong = rows[predict_logits(model, loader).argmax(1).numpy() != repair.y[rows]]
    dropped = np.random.default_rng(seed + 3).choice(wrong, size=round(share * len(wrong)), replace=False)
    return np.setdiff1d(rows, dropped)


def test_validation_share(record: ModelRecord, data: ImageData, protocol: str, requested: float | None = None) -> float:
    """The share of the test set a ``heldout`` split holds out for validation: ``requested`` when
    given, else 0.1 when the model's own training hold-out is unknown (an imported model: its
    training examples may all have been trained on), else 0 (validation uses that hold-out)."""
    if protocol != "heldout":
        return 0.0
    if requested is not None:
        return requested
    return 0.1 if base_validation_indices(record, data) is None else 0.0


def base_validation_indices(record: ModelRecord, data: ImageData) -> np.ndarray | None:
    """The training-split indices the base model held out (never trained on), recomputed from its
    record (``archrepair train`` writes the split's fraction and seed), or ``None`` when the record
    does not say, ``data``'s training split is not the size the record describes, or the recomputed
    split's digest differs from the recorded one."""
    training = record.training or {}
    job = training.get("job") or {}
    if "val_fraction" not in job or "seed" not in job or not training.get("val_examples"):
        return None
    if len(data.y_train) != training.get("train_examples", 0) + training["val_examples"]:
        return None
    held_out = stratified_split(data.y_train, job["val_fraction"], job["seed"])[1]
    recorded = training.get("val_indices_sha256")
    if recorded and recorded != indices_digest(held_out):
        return None  # recomputed differently (another library version): not provably held out
    return held_out
