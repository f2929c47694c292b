"""The final choice between the original model and a repair's candidate: never worse, at a stated level.

Under the ``heldout`` protocol the candidate is kept only when it shows a gain at level ``α``
(``TaskConfig.keep_level``, default :data:`KEEP_LEVEL`) on the **keep rows**: labelled examples that
neither training, early stopping nor any choice between candidates has seen. The test is McNemar's
exact one-sided test on the two models' predictions there: with ``b`` rows only the candidate gets
right and ``c`` rows only the original gets right, ``p = P(X >= b)`` for ``X ~ Binomial(b + c, 1/2)``,
and the candidate is kept when ``p <= α``. A candidate one example ahead is noise and is refused.

The keep rows (:func:`~archrepair._repair.task.make_task`): the part of the base model's training
hold-out that validation does not take (about 4,000 of 5,000 rows for the shared CIFAR-10 models);
for an imported model, half of the test set's validation part (the other half stops early); when
neither leaves rows, half of the validation rows. For a corruption, the keep rows clean and shifted,
as validation uses them.

The old rule (validation accuracy, ties broken by the mean loss) is computed on the same candidate
and recorded beside the new one; it stays the rule under ``--protocol paper`` (the paper's setting,
Table 1 reproduction), where no keep rows are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KEEP_LEVEL = 0.05
"""Default ``α`` of the keep rule: the chance of keeping a candidate no better than the original."""

MIN_SPARE_ROWS = 20
"""The fewest rows of the base model's training hold-out left after validation that are used as keep
rows (on fewer, no gain could reach the level: five rows all for the candidate give p = 1/32); with
fewer, half of the validation rows are."""


@dataclass
class KeepRows:
    """Images ``(N, H, W, C)`` uint8 and labels ``(N,)`` on which the keep rule decides; ``source``
    says where they come from, ``indices`` are their indices in that source's split (clean rows
    only; a corruption adds a shifted copy of each, ``shifted``); ``field_indices``: rows of a field
    set appended after them (a field split)."""

    x: np.ndarray
    y: np.ndarray
    source: str
    indices: np.ndarray
    shifted: bool = False
    field_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.y)


def mcnemar_gain(original_right: np.ndarray, candidate_right: np.ndarray) -> tuple[int, int, float]:
    """``(b, c, p)``: rows only the candidate gets right, rows only the original gets right, and the
    exact one-sided McNemar p-value of the candidate being better (1 when no row is discordant).
    ``original_right``, ``candidate_right``: ``(N,)`` booleans on the same rows."""
    from scipy.stats import binomtest

    original_right, candidate_right = np.asarray(original_right, bool), np.asarray(candidate_right, bool)
    gained = int((candidate_right & ~original_right).sum())
    lost = int((original_right & ~candidate_right).sum())
    if gained + lost == 0:
        return gained, lost, 1.0
    return gained, lost, float(binomtest(gained, gained + lost, 0.5, alternative="greater").pvalue)


def keep_decision(original_right: np.ndarray | None, candidate_right: np.ndarray | None, level: float,
                  old_rule: str, source: str = "") -> dict:
    """The record of the final choice: under the keep rule when keep rows exist (``*_right`` not
    ``None``), else the old rule's ``old_rule`` (``"repaired"`` or ``"original"``), which is recorded
    either way. Keys: ``rule`` (``mcnemar`` or ``validation``), ``level``, ``rows``, ``rows_from``,
    ``candidate_only_right``, ``original_only_right``, ``p_value``, ``decision``, ``decision_old_rule``."""
    if original_right is None or candidate_right is None:
        return {"rule": "validation", "level": None, "rows": 0, "rows_from": None, "candidate_only_right": None,
                "original_only_right": None, "p_value": None, "decision": old_rule, "decision_old_rule": old_rule}
    gained, lost, p = mcnemar_gain(original_right, candidate_right)
    return {"rule": "mcnemar", "level": level, "rows": int(len(original_right)), "rows_from": source,
            "candidate_only_right": gained, "original_only_right": lost, "p_value": p,
            "decision": "repaired" if p <= level else "original", "decision_old_rule": old_rule}


def describe(keep: dict) -> str:
    """One line on the choice: the counts, the p-value and both rules' decisions."""
    if keep["rule"] != "mcnemar":
        return f"kept the {keep['decision']} model by validation accuracy (the paper's rule)"
    return (f"kept the {keep['decision']} model: on {keep['rows']} keep rows ({keep['rows_from']}) the candidate alone "
            f"is right on {keep['candidate_only_right']}, the original alone on {keep['original_only_right']} "
            f"(one-sided McNemar p {keep['p_value']:.3g}, level {keep['level']:g}); by validation accuracy alone: "
            f"{keep['decision_old_rule']}")
