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

    def save(self, path: str | Path) -> None:
        write_text_atomically(Path(path), json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "FailureSplit":
        path = Path(path)
        if not path.exists():
            raise ArchRepairError(f"failure split {str(path)!r} does not exist; make one with `archrepair failures`")
        try:
            record = json.loads(path.read_text())
            return cls(**record)
        except (json.JSONDecodeError, TypeError) as error:
            raise ArchRepairError(f"{str(path)!r} is not a failure split written by archrepair ({error})") from None


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
