"""What a comparison writes: one row per (method, seed) and everything needed to recompute it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields


@dataclass
class ComparisonRow:
    """One method run on one seed. Accuracies are fractions on the test set without ``D_fail``
    (``eval``); ``change_points`` is their difference in percentage points; ``fix_rate`` is the
    accuracy on ``D_fail`` (seen by the repair); ``fixed``/``broken`` count examples of the eval set;
    ``seconds`` is the method's wall-clock time (evaluation excluded); ``unit`` is what the
    method trained (the repaired block, or the gradient method's neuron, layer or block);
    ``prefix_cache``: whether its steps ran on cached block inputs (``"on"``, or ``"off: <reason>"``).
    Under the ``heldout`` protocol, ``holdout_*`` are the figures on the test hold-out
    (:func:`~archrepair._repair.outcome.holdout_figures`; the change in points with its 95% interval,
    flip rates and the unseen-failure fix rate as fractions), for the returned model and
    (``candidate_*``) for the repaired model whichever won; ``None`` under ``paper``. For a field split
    the hold-out is the field's, and ``home_*`` are the returned model's figures on the home test set
    (``None`` otherwise). ``keep``: the
    final choice's record (:func:`~archrepair._repair.keep.keep_decision`: discordant counts, p-value,
    the decision under the keep rule and under the old validation rule); ``notes``: one line each for
    what did not happen as expected (:meth:`~archrepair._repair.base.Repairer.note`: a budget spent at
    the first step, a search with no architecture step); ``choice``: what ``auto`` chose
    (:func:`choice_record`)."""

    method: str
    seed: int
    accuracy_before: float
    accuracy_after: float
    change_points: float
    fix_rate: float
    fixed: int
    broken: int
    seconds: float
    parameters_before: int
    parameters_after: int
    kept: str
    block: str | None = None
    unit: str | None = None
    genotype: dict | None = None
    repair_train_indices: list[int] = field(default_factory=list)
    val_rows: list[int] = field(default_factory=list)
    prefix_cache: str | None = None
    holdout_change_points: float | None = None
    holdout_interval_points: list[float] | None = None
    holdout_negative_flip_rate: float | None = None
    holdout_unseen_fix_rate: float | None = None
    candidate_holdout_change_points: float | None = None
    candidate_holdout_interval_points: list[float] | None = None
    candidate_holdout_negative_flip_rate: float | None = None
    candidate_holdout_unseen_fix_rate: float | None = None
    home_change_points: float | None = None
    home_negative_flip_rate: float | None = None
    candidate_fix_rate: float | None = None
    candidate_paper_change_points: float | None = None
    keep: dict | None = None
    notes: list[str] = field(default_factory=list)
    choice: dict | None = None

    @classmethod
    def from_report(cls, report: dict, seconds: float) -> ComparisonRow:
        """The row of a :func:`archrepair._repair.pipeline.run_repair` report."""
        return cls(
            method=report["method"], seed=report["seed"], accuracy_before=report["eval_accuracy_before"],
            accuracy_after=report["eval_accuracy_after"], change_points=report["eval_change_points"],
            fix_rate=report["fail_fixed_rate"], fixed=report["eval_fixed"], broken=report["eval_broken"],
            seconds=round(seconds, 2), parameters_before=report["parameters_before"],
            parameters_after=report["parameters_after"], kept=report["kept"], block=report["block"],
            unit=report["block"] or report["details"].get("unit"), genotype=report["genotype"],
            repair_train_indices=report["split"]["repair_train_indices"],
            val_rows=report["split"]["val_rows"], prefix_cache=report.get("prefix_cache"), keep=report.get("keep"),
            notes=report["details"].get("notes", []), choice=choice_record(report["details"]),
            **judged_fields(report.get("judged") or {}),
        )


CHOICE_KEYS = ("scenario", "chosen", "chosen_mix", "candidates", "offered")


def choice_record(details: dict) -> dict | None:
    """What a method that chooses among candidates (``auto``) chose: its scenario, the option
    returned (or, when the keep rule passed none, the best validated) and its mix ``α``, every
    candidate's record (seconds, share, validation figures, status) and the options offered to the
    keep rule; ``None`` for other methods."""
    if "candidates" not in details:
        return None
    return {key: details.get(key) for key in CHOICE_KEYS}


def judged_fields(judged: dict) -> dict:
    """The flat :class:`ComparisonRow` fields of a report's ``judged`` figures."""
    fields = {}
    for whose, prefix in (("returned", ""), ("candidate", "candidate_")):
        figures = judged.get(whose) or {}
        held = figures.get("holdout")
        if held:
            fields |= {f"{prefix}holdout_change_points": held["change_points"],
                       f"{prefix}holdout_interval_points": held["change_interval_points"],
                       f"{prefix}holdout_negative_flip_rate": held["negative_flip_rate"],
                       f"{prefix}holdout_unseen_fix_rate": held["unseen_fix_rate"]}
    home = (judged.get("returned") or {}).get("home")
    if home:
        fields |= {"home_change_points": home["change_points"], "home_negative_flip_rate": home["negative_flip_rate"]}
    candidate = judged.get("candidate") or {}
    if candidate:
        fields |= {"candidate_fix_rate": candidate["fail_fixed_rate"],
                   "candidate_paper_change_points": candidate["paper_change_points"]}
    return fields


@dataclass
class Comparison:
    """All rows plus the shared setting: the budget, the base model, the data and ``D_fail``, the
    repair settings (``config``), the package versions and the execution environment (device,
    threads), so that any row can be rerun. ``errors``: the runs that raised, as
    ``{"method", "seed", "error"}`` (the other runs go on; a resumed comparison retries them)."""

    rows: list[ComparisonRow]
    methods: list[str]
    seeds: list[int]
    budget: dict
    config: dict
    base_checkpoint: str | None
    base_fingerprint: str | None
    data: dict
    failures: dict
    versions: dict
    errors: list[dict] = field(default_factory=list)
    environment: dict = field(default_factory=dict)
    format_version: int = 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Comparison:
        raw = json.loads(text)
        raw["rows"] = [ComparisonRow(**row) for row in raw["rows"]]
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"not a comparison file: unknown fields {sorted(unknown)}")
        return cls(**raw)

    def rows_of(self, method: str) -> list[ComparisonRow]:
        """The rows of ``method`` in seed order."""
        return sorted((row for row in self.rows if row.method == method), key=lambda row: row.seed)
