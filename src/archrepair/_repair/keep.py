"""The final choice between the original model and a repair's candidate: never worse, at a stated level.

Under the ``heldout`` protocol the candidate is kept only when it shows a gain at level ``α``
(``TaskConfig.keep_level``, default :data:`KEEP_LEVEL`) on the **keep rows**: labelled examples that
neither training, early stopping nor any choice between candidates has seen. The test is McNemar's
exact one-sided test on the two models' predictions there: with ``b`` rows only the candidate gets
right and ``c`` rows only the original gets right, ``p = P(X >= b)`` for ``X ~ Binomial(b + c, 1/2)``,
and the candidate is kept when ``p <= α``. A candidate one example ahead is noise and is refused.
A method that offers several options (``auto``: the best of each candidate it trained) has each
tested so, with Holm's procedure keeping the family-wise level ``α`` (:func:`keep_choice`); the
best-validated option that passes is returned, the original when none does.

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


def holm(p_values: list[float], level: float) -> list[tuple[bool, float]]:
    """Holm's step-down procedure at family-wise level ``level``: for each p-value (in the order given),
    whether it passes and the threshold it was held to. The ``k``-th smallest of ``m`` is held to
    ``level / (m - k + 1)``; the first that misses its threshold stops the procedure (it and every
    larger one fail). One p-value: held to ``level`` itself."""
    order = sorted(range(len(p_values)), key=lambda index: p_values[index])
    results: list[tuple[bool, float]] = [(False, level)] * len(p_values)
    stopped = False
    for rank, index in enumerate(order):
        threshold = level / (len(p_values) - rank)
        stopped = stopped or p_values[index] > threshold
        results[index] = (not stopped, threshold)
    return results


def keep_decision(original_right: np.ndarray | None, candidate_right: np.ndarray | None, level: float,
                  old_rule: str, source: str = "") -> dict:
    """The record of the final choice between the original and one candidate: :func:`keep_choice`
    with a single option (McNemar at ``level``; Holm's procedure over one test is that test)."""
    return keep_choice(original_right, None if candidate_right is None else [candidate_right], ["candidate"], level,
                       old_rule, source)


def keep_choice(original_right: np.ndarray | None, options_right: list[np.ndarray] | None, names: list[str],
                level: float, old_rule: str, source: str = "") -> dict:
    """The record of the final choice between the original and the options ``names`` (ordered best
    validated first): under the keep rule when keep rows exist (``(N,)`` booleans ``original_right``
    and one per option in ``options_right``), each option is tested against the original (one-sided
    exact McNemar) and Holm's procedure at family-wise level ``level`` says which pass; the chosen
    option is the first (best validated) that passes, the original when none does. Without keep rows
    the old rule's ``old_rule`` (``"repaired"``: the first option, or ``"original"``) decides, and it
    is recorded either way.

    Keys: ``rule`` (``mcnemar`` or ``validation``), ``procedure`` (``holm``), ``level``, ``rows``,
    ``rows_from``, ``tests`` (per option: ``option``, ``candidate_only_right``, ``original_only_right``,
    ``p_value``, ``threshold``, ``passed``, ``chosen``), ``chosen`` (the option returned, or ``None``),
    ``decision`` (``repaired`` or ``original``), ``decision_old_rule``, and the chosen option's (else
    the first option's) ``candidate_only_right``, ``original_only_right`` and ``p_value``."""
    if original_right is None or options_right is None:
        return {"rule": "validation", "procedure": None, "level": None, "rows": 0, "rows_from": None, "tests": [],
                "chosen": names[0] if old_rule == "repaired" else None, "candidate_only_right": None,
                "original_only_right": None, "p_value": None, "decision": old_rule, "decision_old_rule": old_rule}
    counts = [mcnemar_gain(original_right, right) for right in options_right]
    verdicts = holm([p for _, _, p in counts], level)
    chosen = next((index for index, (passed, _) in enumerate(verdicts) if passed), None)
    tests = [{"option": name, "candidate_only_right": gained, "original_only_right": lost, "p_value": p,
              "threshold": threshold, "passed": passed, "chosen": index == chosen}
             for index, (name, (gained, lost, p), (passed, threshold)) in enumerate(zip(names, counts, verdicts))]
    reported = tests[0 if chosen is None else chosen]
    return {"rule": "mcnemar", "procedure": "holm", "level": level, "rows": int(len(original_right)),
            "rows_from": source, "tests": tests, "chosen": None if chosen is None else names[chosen],
            "candidate_only_right": reported["candidate_only_right"],
            "original_only_right": reported["original_only_right"], "p_value": reported["p_value"],
            "decision": "original" if chosen is None else "repaired", "decision_old_rule": old_rule}


def describe(keep: dict) -> str:
    """One line on the choice: the counts, the p-value and both rules' decisions (and, over several
    options, how many passed Holm's procedure and which was chosen)."""
    if keep["rule"] != "mcnemar":
        return f"kept the {keep['decision']} model by validation accuracy (the paper's rule)"
    tests = keep.get("tests") or []
    family = ""
    if len(tests) > 1:
        passed = [test["option"] for test in tests if test["passed"]]
        family = (f"; Holm over {len(tests)} options (best validated first: "
                  + ", ".join(f"{test['option']} p {test['p_value']:.3g}" for test in tests)
                  + f"): {len(passed)} passed" + (f", returned {keep['chosen']}" if keep["chosen"] else ""))
    return (f"kept the {keep['decision']} model: on {keep['rows']} keep rows ({keep['rows_from']}) the candidate alone "
            f"is right on {keep['candidate_only_right']}, the original alone on {keep['original_only_right']} "
            f"(one-sided McNemar p {keep['p_value']:.3g}, level {keep['level']:g}){family}; by validation accuracy "
            f"alone: {keep['decision_old_rule']}")
