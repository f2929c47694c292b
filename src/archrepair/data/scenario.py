"""The failure scenario: ``D_fail`` (misclassified test examples) and the examples a repair is judged on.

Every repair and baseline starts from one saved :class:`FailureSplit`, so that accuracy before
and after is measured on the same examples and ``D_fail`` never counts toward it.

Two protocols. ``heldout`` (the default): a seeded, class-stratified split of the test set into a
failure pool and a test hold-out, which depends only on the labels and the seed (every model of a
data set shares it at a given seed); ``D_fail`` is drawn from the pool's misclassified examples and
the repair is judged on the hold-out, which neither the model nor the repair has seen. ``paper``:
``D_fail`` from every misclassified test example, judged on the rest of the test set (the paper's
figure, which favours models whose mistakes are the deployed model's: removing ``D_fail`` leaves a
set enriched in examples the deployed model gets right). Both figures are reported either way.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ArchRepairError
from ..fileio import write_text_atomically
from .splits import stratified_split

PROTOCOLS = ("heldout", "paper")


@dataclass
class FailureSplit:
    """Indices into the test split.

    Attributes:
        fail_indices: ``D_fail``, sorted test indices of the selected misclassified examples.
        eval_indices: every other test index (sorted); the honest evaluation set.
        seed: seed of the random choice among the misclassified examples.
        requested: how many failures were asked for.
        misclassified: how many test examples the model got wrong in all.
        data_spec, data_fingerprint, model_fingerprint: what the split was made from.
        source: ``test`` (the test split, as it is or corrupted) or ``field`` (a field set replaced
            the test split: every index is then into the field set; ``extra`` holds ``field``, what
            was found there, and ``home_predictions``, the original's predictions on the home test split).
        protocol: ``heldout`` or ``paper`` (see the module docstring).
        holdout_indices: the test hold-out (sorted; ``heldout`` only), disjoint from the pool that
            ``D_fail`` was drawn from; ``holdout`` its share of the test set.
        holdout_predictions: the original model's predictions on ``holdout_indices``, so that flips
            can be computed for any later model.
        pool_failures: misclassified examples in the pool (``heldout``), of which ``D_fail`` took
            ``len(fail_indices)``.
        validation_indices: a seeded, stratified part of the pool held out for validation (early
            stopping and the final choice) when the model's own training hold-out is unknown
            (``heldout`` only; an imported model); never in ``D_fail`` or any evaluation;
            ``validation`` its share of the test set.
    """

    fail_indices: list[int]
    eval_indices: list[int]
    seed: int
    requested: int
    misclassified: int
    data_spec: str = ""
    data_fingerprint: str = ""
    model_fingerprint: str = ""
    source: str = "test"
    extra: dict = field(default_factory=dict)
    format_version: int = 1
    protocol: str = "paper"
    holdout_indices: list[int] = field(default_factory=list)
    holdout: float | None = None
    holdout_predictions: list[int] = field(default_factory=list)
    pool_failures: int | None = None
    validation_indices: list[int] = field(default_factory=list)
    validation: float | None = None

    def save(self, path: str | Path) -> None:
        write_text_atomically(Path(path), json.dumps(asdict(self), indent=1))

    def notes(self) -> list[str]:
        """What a user should be told about this split, one line each: a shortfall of failures
        (:meth:`shortfall`) and, for a field set, its conversions and warnings."""
        shortfall, found = self.shortfall(), self.extra.get("field") or {}
        return ([shortfall] if shortfall else []) + list(found.get("notes", [])) + list(found.get("warnings", []))

    def shortfall(self) -> str | None:
        """One line saying why ``D_fail`` holds fewer failures than were asked for (``None``: it does not)."""
        taken = len(self.fail_indices)
        if taken >= self.requested:
            return None
        if self.source == "field":
            why = f"the field set's fit part holds {self.pool_failures} of its {self.misclassified} failures"
        elif self.protocol == "heldout":
            why = (f"the failure pool holds {self.pool_failures} of the model's {self.misclassified} test failures "
                   f"(the test hold-out, {self.holdout:.0%} of the test set, is never drawn from"
                   + (", nor the validation part" if self.validation_indices else "") + ")")
        else:
            why = f"the model misclassifies only {self.misclassified} test examples"
        return f"asked for {self.requested} failures, but {why}; D_fail takes all {taken}"

    @classmethod
    def load(cls, path: str | Path) -> "FailureSplit":
        path = Path(path)
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise ArchRepairError(f"failure split {str(path)!r} {what}; give the file `archrepair failures --out` wrote")
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            split = cls(**record)
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as error:
            raise ArchRepairError(f"{str(path)!r} is not a failure split written by archrepair "
                                  f"({type(error).__name__}: {str(error).splitlines()[0][:120]})") from None
        split.check(str(path))
        return split

    def digest(self) -> str:
        """sha256 (first 16 hex digits) of ``D_fail``'s indices: what ties a localisation or a
        repair to the failures it was made from."""
        import hashlib

        return hashlib.sha256(json.dumps(sorted(self.fail_indices)).encode()).hexdigest()[:16]

    def check(self, where: str = "the failure split", test_size: int | None = None) -> None:
        """Refuse a split that is empty, has indices that are not whole numbers, repeats or shares
        an index between ``D_fail`` and the evaluation part, or (with ``test_size``) points outside
        the test split."""
        parts = {"fail_indices": self.fail_indices, "eval_indices": self.eval_indices,
                 "holdout_indices": self.holdout_indices, "holdout_predictions": self.holdout_predictions,
                 "validation_indices": self.validation_indices}
        for name, values in parts.items():
            if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise ArchRepairError(f"{where}: {name} must be a list of whole numbers; remake it with `archrepair failures`")
            if len(set(values)) != len(values) and name != "holdout_predictions":
                raise ArchRepairError(f"{where}: {name} repeats an index; remake it with `archrepair failures`")
        if not self.fail_indices:
            raise ArchRepairError(f"{where}: D_fail is empty; remake it with `archrepair failures`")
        if set(self.fail_indices) & set(self.eval_indices):
            raise ArchRepairError(f"{where}: D_fail and the evaluation part overlap; remake it with `archrepair failures`")
        if self.protocol not in PROTOCOLS:
            raise ArchRepairError(f"{where}: unknown protocol {self.protocol!r} (one of {', '.join(PROTOCOLS)})")
        if self.protocol == "heldout":
            if not self.holdout_indices or len(self.holdout_predictions) != len(self.holdout_indices):
                raise ArchRepairError(f"{where}: a heldout split needs its hold-out and the original model's "
                                      "predictions on it; remake it with `archrepair failures`")
            if set(self.fail_indices) & set(self.holdout_indices):
                raise ArchRepairError(f"{where}: D_fail and the test hold-out overlap; remake it with `archrepair failures`")
        used = set(self.fail_indices) | set(self.eval_indices) | set(self.holdout_indices)
        if set(self.validation_indices) & used:
            raise ArchRepairError(f"{where}: the validation part overlaps D_fail or an evaluation part; remake it with "
                                  "`archrepair failures`")
        if test_size is not None:
            every = self.fail_indices + self.eval_indices + self.holdout_indices + self.validation_indices
            if min(every) < 0 or max(every) >= test_size:
                raise ArchRepairError(f"{where}: indices outside the test split's 0..{test_size - 1}; "
                                      "use the data it was made from")


def holdout_split(labels: np.ndarray, holdout: float, seed: int,
                  named: str = "the test set") -> tuple[np.ndarray, np.ndarray]:
    """``(pool, holdout)``: a seeded, class-stratified split of the test indices that depends only on
    ``labels`` and ``seed`` (so every model of a data set shares it), ``holdout`` in (0, 1); ``named``:
    what the indices are, for the messages (a field set's name)."""
    if not 0 < holdout < 1:
        raise ArchRepairError(f"--holdout must be between 0 and 1 (exclusive), got {holdout}")
    labels = np.asarray(labels)
    size = round(holdout * len(labels))
    if size < 2 or len(labels) - size < 2:
        advice = "use more test data or --protocol paper" if named == "the test set" else "collect more images"
        raise ArchRepairError(f"{named} has too few examples ({len(labels)}) for --holdout {holdout}; {advice}")
    return stratified_split(labels, holdout, seed)


def heldout_parts(labels: np.ndarray, holdout: float, validation: float, seed: int,
                  groups: np.ndarray | None = None,
                  named: str = "the test set") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pool, holdout, validation)``: sorted indices of a ``heldout`` split of ``labels`` (see
    :func:`select_failures`), with every member of a group on its first member's side."""
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    _, first, group_of = np.unique(groups, return_index=True, return_inverse=True)
    heads = np.asarray(labels)[first]
    pool, held = holdout_split(heads, holdout, seed, named)
    validating = np.arange(0)
    if validation > 0:
        if not 0 < validation < 1 - holdout:
            smaller = " or a smaller --test-validation" if named == "the test set" else ""
            raise ArchRepairError(f"--holdout {holdout:g} leaves no room for the validation part of {named} "
                                  f"({validation:g} of it); give --holdout below {1 - validation:g}{smaller}")
        rest, part = stratified_split(heads[pool], validation / (1 - holdout), seed + 1)
        pool, validating = np.sort(pool[rest]), np.sort(pool[part])
    members = group_of.reshape(-1)
    return tuple(np.flatnonzero(np.isin(members, chosen)) for chosen in (pool, held, validating))


def select_failures(
    predictions: np.ndarray, labels: np.ndarray, count: int = 1000, seed: int = 0, protocol: str = "heldout",
    holdout: float = 0.5, validation: float = 0.0, groups: np.ndarray | None = None, named: str = "the test set",
) -> FailureSplit:
    """Choose ``count`` misclassified examples at random (seeded) as ``D_fail``.

    ``predictions`` and ``labels`` are ``(N,)`` over the whole test split. ``protocol="heldout"``:
    the test set is first split (:func:`holdout_split`, share ``holdout``) and ``D_fail`` drawn from
    the pool's failures; ``"paper"``: from every failure. Fewer failures than ``count``: all are
    taken. ``validation`` (``heldout`` only): that share of the test set is taken from the pool
    (stratified; it too depends only on the labels and the seed) as ``validation_indices``, for a
    model whose own training hold-out is unknown. ``eval_indices`` is every test index outside
    ``D_fail`` and the validation part (the paper's figure). ``groups`` (``heldout`` only; ``(N,)``
    ids, e.g. image hashes): examples sharing an id land on one side of every split (the split is
    drawn over each group's first example, stratified by its label). ``named``: what the test split
    is, for the messages (a field set's name).
    """
    if count <= 0:
        raise ArchRepairError(f"the number of failures must be positive, got {count}")
    if protocol not in PROTOCOLS:
        raise ArchRepairError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    wrong = np.flatnonzero(predictions != labels)
    held = np.arange(0)
    candidates = wrong
    validating = np.arange(0)
    if protocol == "heldout":
        pool, held, validating = heldout_parts(labels, holdout, validation, seed, groups, named)
        candidates = np.intersect1d(wrong, pool)
    if len(candidates) == 0:
        where = "in the failure pool" if protocol == "heldout" else "on the test set"
        raise ArchRepairError(f"the model classifies every example {where} correctly; there are no failures to repair")
    chosen = np.sort(np.random.default_rng(seed).choice(candidates, size=min(count, len(candidates)), replace=False))
    keep = np.ones(len(labels), dtype=bool)
    keep[chosen] = False
    keep[validating] = False
    return FailureSplit(
        fail_indices=chosen.tolist(),
        eval_indices=np.flatnonzero(keep).tolist(),
        seed=seed,
        requested=count,
        misclassified=int(len(wrong)),
        protocol=protocol,
        holdout_indices=held.tolist(),
        holdout=holdout if protocol == "heldout" else None,
        holdout_predictions=predictions[held].astype(int).tolist(),
        pool_failures=int(len(candidates)) if protocol == "heldout" else None,
        validation_indices=validating.tolist(),
        validation=validation if len(validating) else None,
    )
