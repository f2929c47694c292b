"""The failure scenario: ``D_fail`` (misclassified test examples) and the evaluation split without it.

Every repair and baseline starts from one saved :class:`FailureSplit`, so that accuracy before
and after is measured on the same examples and ``D_fail`` never counts toward it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ArchRepairError
from ..fileio import write_text_atomically


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
        source: ``test`` for the paper's first scenario (later: a corruption name).
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

    def save(self, path: str | Path) -> None:
        write_text_atomically(Path(path), json.dumps(asdict(self), indent=1))

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
        parts = {"fail_indices": self.fail_indices, "eval_indices": self.eval_indices}
        for name, values in parts.items():
            if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise ArchRepairError(f"{where}: {name} must be a list of whole numbers; remake it with `archrepair failures`")
            if len(set(values)) != len(values):
                raise ArchRepairError(f"{where}: {name} repeats an index; remake it with `archrepair failures`")
        if not self.fail_indices:
            raise ArchRepairError(f"{where}: D_fail is empty; remake it with `archrepair failures`")
        if set(self.fail_indices) & set(self.eval_indices):
            raise ArchRepairError(f"{where}: D_fail and the evaluation part overlap; remake it with `archrepair failures`")
        if test_size is not None:
            every = self.fail_indices + self.eval_indices
            if min(every) < 0 or max(every) >= test_size:
                raise ArchRepairError(f"{where}: indices outside the test split's 0..{test_size - 1}; "
                                      "use the data it was made from")


def select_failures(
    predictions: np.ndarray, labels: np.ndarray, count: int = 1000, seed: int = 0
) -> FailureSplit:
    """Choose ``count`` misclassified examples at random (seeded); the rest is the evaluation split.

    ``predictions`` and ``labels`` are ``(N,)`` over the whole test split. If fewer than ``count``
    examples are misclassified, all of them are taken.
    """
    if count <= 0:
        raise ArchRepairError(f"the number of failures must be positive, got {count}")
    wrong = np.flatnonzero(np.asarray(predictions) != np.asarray(labels))
    if len(wrong) == 0:
        raise ArchRepairError("the model classifies every test example correctly; there are no failures to repair")
    chosen = np.sort(np.random.default_rng(seed).choice(wrong, size=min(count, len(wrong)), replace=False))
    keep = np.ones(len(labels), dtype=bool)
    keep[chosen] = False
    return FailureSplit(
        fail_indices=chosen.tolist(),
        eval_indices=np.flatnonzero(keep).tolist(),
        seed=seed,
        requested=count,
        misclassified=int(len(wrong)),
    )
