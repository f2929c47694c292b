"""A repair's report as typed values: :class:`RepairReport`, grouped where the figures group (the
hold-out and home figures of the returned model and of the candidate, the keep decision, the field
set, the cost), read by the same names the report's JSON (``report.json``, the console's
``--json``, a study row's source) uses. :meth:`RepairReport.to_dict` derives that JSON from them;
:meth:`RepairReport.from_dict` and :meth:`RepairReport.load` read it, from this version's reports and
from older ``report.json`` files (a group an older file lacks is ``None``).

Example:
    >>> result, report = archrepair.repair("runs/r18", "runs/fail.json")   # doctest: +SKIP
    >>> report.returned.holdout.change_points, report.keep.p_value          # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import ArchRepairError
from ..fileio import json_ready


@dataclass(frozen=True)
class Holdout:
    """Paired figures of the original and a model on rows no repair saw (the test or field hold-out,
    or the home test set): accuracies (fractions), the change and its 95% interval (percentage
    points), McNemar's exact two-sided ``p``, the flips each way (counts and shares of the rows) and
    the share of the rows' original failures fixed."""

    examples: int
    accuracy_before: float
    accuracy_after: float
    change_points: float
    change_interval_points: tuple[float, float]
    mcnemar_p: float
    negative_flips: int
    positive_flips: int
    negative_flip_rate: float
    positive_flip_rate: float
    unseen_failures: int
    unseen_fix_rate: float


@dataclass(frozen=True)
class Judgement:
    """One model against the original: on the hold-out (``None`` under the ``paper`` protocol), the
    fix rate on ``D_fail``, the paper's figure (the change on the test set without ``D_fail``, points)
    and, for a field set, on the home test set."""

    holdout: Holdout | None
    fail_fixed_rate: float
    paper_change_points: float
    home: Holdout | None


@dataclass(frozen=True)
class KeepTest:
    """One option's test on the keep rows: the rows only it / only the original gets right, the
    one-sided ``p``, Holm's threshold for it, whether it passed and was returned."""

    option: str
    candidate_only_right: int
    original_only_right: int
    p_value: float
    threshold: float
    passed: bool
    chosen: bool


@dataclass(frozen=True)
class KeepDecision:
    """The final choice between the original and the candidate's options (:mod:`.keep`): the rule
    (``mcnemar``, or ``validation`` under the ``paper`` protocol), its procedure and level, the keep
    rows and where they came from, every option's test, the option returned, the reported option's
    counts and ``p``, the decision and the old rule's."""

    rule: str
    procedure: str | None
    level: float | None
    rows: int
    rows_from: str | None
    tests: tuple[KeepTest, ...]
    chosen: str | None
    candidate_only_right: int | None
    original_only_right: int | None
    p_value: float | None
    decision: str
    decision_old_rule: str


@dataclass(frozen=True)
class Cost:
    """What the repair cost: seconds per phase (measured and estimated), the total, parameters and
    the latency of one batch (milliseconds) before and after."""

    phase_seconds: dict[str, float]
    estimate_seconds: dict[str, float]
    total_seconds: float
    parameters_before: int
    parameters_after: int
    latency_ms_before: float
    latency_ms_after: float
    latency_batch: int


TYPED = ("method", "kept", "block", "judged", "keep", "field", "plan", *(f.name for f in fields(Cost)))
"""The JSON keys :class:`RepairReport` holds as typed values (the rest stay in ``other``)."""


@dataclass(frozen=True)
class RepairReport:
    """One repair's report. ``method``, ``kept`` (``repaired`` or ``original``), ``block`` (``None``:
    the whole network); ``returned`` and ``candidate``: each model against the original
    (:class:`Judgement`); ``keep``: the decision (``None`` in reports made before the keep rule);
    ``field``: the field set's record (``None`` for test or corruption failures); ``cost`` (``None``
    in reports made before it was complete); ``plan``: the repair as run
    (:class:`~archrepair.plan.RepairPlan`'s fields); ``other``: every other figure of the JSON (the
    paper's figure, per-class changes, the split, the method's details), by its JSON name."""

    method: str
    kept: str
    block: str | None
    returned: Judgement | None
    candidate: Judgement | None
    keep: KeepDecision | None
    field: dict | None
    cost: Cost | None
    plan: dict | None
    other: dict

    @classmethod
    def from_dict(cls, report: dict) -> RepairReport:
        """The typed report of a report's JSON (this version's or an older one's)."""
        try:
            judged = report.get("judged") or {}
            return cls(report["method"], report["kept"], report.get("block"),
                       _judgement(judged.get("returned")), _judgement(judged.get("candidate")),
                       _keep(report.get("keep")), report.get("field"), _typed(Cost, report), report.get("plan"),
                       {key: value for key, value in report.items() if key not in TYPED})
        except (KeyError, TypeError) as error:
            raise ArchRepairError(f"not a repair report ({type(error).__name__}: {error})") from None

    @classmethod
    def load(cls, path: str | Path) -> RepairReport:
        """The report in ``report.json`` at ``path`` (the file, or the repaired model's folder)."""
        path = Path(path)
        path = path / "report.json" if path.is_dir() else path
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ArchRepairError(f"cannot read the report {str(path)!r} ({error})") from None

    def to_dict(self) -> dict:
        """The report's JSON, derived from the typed values (what ``report.json`` holds)."""
        typed = {"method": self.method, "kept": self.kept, "block": self.block,
                 "judged": {"returned": _plain(self.returned), "candidate": _plain(self.candidate)},
                 "keep": _plain(self.keep), "field": self.field, "plan": self.plan, **(_plain(self.cost) or {})}
        return json.loads(json.dumps(json_ready(self.other | typed)))


def _plain(value):
    """A typed group as JSON values (``None`` stays ``None``)."""
    return None if value is None else asdict(value)


def _judgement(judged: dict | None) -> Judgement | None:
    if judged is None:
        return None
    return Judgement(_holdout(judged.get("holdout")), judged["fail_fixed_rate"], judged["paper_change_points"],
                     _holdout(judged.get("home")))


def _holdout(figures: dict | None) -> Holdout | None:
    if figures is None:
        return None
    values = {f.name: figures[f.name] for f in fields(Holdout)}
    values["change_interval_points"] = tuple(values["change_interval_points"])
    return Holdout(**values)


def _keep(keep: dict | None) -> KeepDecision | None:
    if keep is None:
        return None
    values = {f.name: keep.get(f.name) for f in fields(KeepDecision)}
    values["tests"] = tuple(KeepTest(**{f.name: test[f.name] for f in fields(KeepTest)})
                            for test in keep.get("tests") or ())
    return KeepDecision(**values)


def _typed(kind, report: dict):
    """``kind`` of the top-level keys it names, or ``None`` when the report lacks one (an older file)."""
    names = [f.name for f in fields(kind)]
    if any(name not in report for name in names):
        return None
    return kind(**{name: report[name] for name in names})
