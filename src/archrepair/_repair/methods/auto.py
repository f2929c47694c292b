"""``auto``, the default repair: the candidates the held-out bench found worth running for the
scenario, trained one after another within one budget; the best by validation is the candidate,
and the keep rule (:mod:`..keep`) decides between it and the original model, as for every method.

Why these candidates (``benchmarks/README.md``; 120 s per run, the shared CIFAR-10 ResNet-18s):
on the hold-out of seeds 0-5, training the localised block more on the training rows, without the
failures (``train-more-block``), gained +2.06 points where the paper's search gained +0.88, and
training the block with the largest failure gradient with the failures (``block-gradient``) +2.44;
for failures under a distribution shift, AugMix-style training with the Jensen-Shannon consistency
loss led (+11.6 points on the shifted images against +9.0 for the search). Among wider lists, on
the validation rows of design seeds 100-102 only (``benchmarks/auto_design.py``): the failures at
weight 0.5 and 1 validated best among 0, 0.5, 1 and 2; focal distillation (λ 3) lowered validation
accuracy (0.832 against 0.837 for the same training without it), so no default candidate distils.
The paper's architecture search is the last candidate: it runs only when at least ``min_seconds``
of the budget are left (always without a time budget).

Each trained candidate that keeps the model's architecture is also offered interpolated towards the
original weights (α 0.25, 0.5, 0.75; no training, a validation pass each), and the choice takes the
best validation accuracy over them all. On design seeds 100-102 (``auto_design.py --choice``,
validation only) this was the rule with the highest validation accuracy (84.30% against 84.23%
without the interpolations) whose validation negative flips were at most ``train-more-block``'s
(2.43% against 2.43%; without the interpolations 3.00%); weighing negative flips in the score
(``flip_weight`` 0.5 to 3) cut them further (1.47% to 0.77%) at 0.2 to 1.3 points of accuracy.

Budget: with ``budget.seconds``, each candidate may use its ``share`` of what is left when it starts
(``remaining · share / Σ shares of the candidates still to run``; ``share`` 0: what the others
leave), so time a candidate does not use (early stopping) goes to the next. An epoch budget is
dealt out over the candidates in order, one epoch at a time. The split, each candidate's seconds,
epochs, validation accuracy and loss, and the candidates skipped (and why) are in
``details["candidates"]``. With a work folder (``repair --resume``), each finished candidate is
saved there and a resumed run does not train it again (its seconds count against the budget); the
search candidate resumes from its own per-epoch state.

Example:
    >>> result = get_repairer("auto", budget=Budget(seconds=120)).repair(task)   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from ...budget import Budget, Deadline
from ...errors import ArchRepairError
from ...fileio import json_ready, write_bytes_atomically
from ..base import Candidate, Repairer, validation_figures
from ..registry import RepairSettings, get_repairer, register_repairer
from ..retain import RetainConfig
from ..task import RepairTask
from .archrepair import localised_block


@dataclass(frozen=True)
class CandidateSpec:
    """One candidate: the registered ``method`` it trains with, the task's failure weight replaced by
    ``fail_weight`` (``None``: the task's), focal distillation at ``retain_weight`` (0: none),
    ``share`` of the time left when it starts (see the module docstring), and the fewest seconds it
    needs (``min_seconds``; with less left it is skipped)."""

    name: str
    method: str
    fail_weight: float | None = None
    retain_weight: float = 0.0
    share: float = 1.0
    min_seconds: float = 0.0


LOCALISING = ("train-more-block", "archrepair")
"""Methods that train the localised block: localised once and shared; a method that finds its own
block (``block-gradient``: the largest failure gradient) keeps its choice unless a block is given."""

FAILURE_CANDIDATES = (
    CandidateSpec("train-more-block", "train-more-block"),
    CandidateSpec("block-gradient-w0.5", "block-gradient", fail_weight=0.5),
    CandidateSpec("block-gradient", "block-gradient", fail_weight=1.0),
    CandidateSpec("network-gradient", "network-gradient", fail_weight=1.0),
    CandidateSpec("apricot", "apricot"),
    CandidateSpec("archrepair+distill", "archrepair", retain_weight=10.0, share=0.0, min_seconds=60.0),
)
SHIFT_CANDIDATES = (
    CandidateSpec("augmix", "augmix"),
    CandidateSpec("archrepair+distill", "archrepair", retain_weight=10.0, share=0.0, min_seconds=60.0),
)
FIELD_CANDIDATES = (
    CandidateSpec("network-gradient", "network-gradient", fail_weight=1.0),
    CandidateSpec("augmix", "augmix"),
    CandidateSpec("block-gradient", "block-gradient", fail_weight=1.0),
    CandidateSpec("archrepair", "archrepair", share=0.0, min_seconds=15.0),
)
"""The candidates of each scenario, in the order they train: failures from the deployment data as it
is (``failures``), under a distribution shift (``shift``: the task's corruption), from a field set
(``field``: every candidate trains on the field's failures and images; the "train more" methods,
which never see them, are left out)."""


MIXES = (0.25, 0.5, 0.75)
"""The interpolations towards the original that are candidates too (see :class:`AutoConfig`)."""


@dataclass
class AutoConfig:
    """``failures``, ``shift``, ``field_set``: the candidates of each scenario (:data:`FIELD_CANDIDATES`);
    ``settings``: what every candidate's method is built from (a given ``block`` is every block-level
    candidate's block).

    Options are scored by ``val_accuracy - flip_weight · val_negative_flip_rate`` on the validation
    rows (ties: the lower loss). ``mixes``: besides each trained candidate of the model's own
    architecture, its weights interpolated towards the original's, ``θ_original + α (θ_candidate -
    θ_original)`` for each ``α`` (1: the candidate as trained), are options of that candidate (a
    validation pass each, no training); ``soup``: the candidates of the model's own architecture
    averaged greedily (Wortsman et al. 2022: best validated first, each next one joins when the
    average validates better) are one more option. The best-scored option of each candidate (and the
    soup), at most ``keep_options`` of them best first, go to the keep rule, which tests each against
    the original with Holm's procedure and returns the best validated that passes (:mod:`..keep`)."""

    failures: tuple[CandidateSpec, ...] = FAILURE_CANDIDATES
    shift: tuple[CandidateSpec, ...] = SHIFT_CANDIDATES
    field_set: tuple[CandidateSpec, ...] = FIELD_CANDIDATES
    settings: RepairSettings = field(default_factory=RepairSettings)
    flip_weight: float = 0.0
    mixes: tuple[float, ...] = MIXES
    soup: bool = True
    keep_options: int = 4


class AutoRepair(Repairer):
    """Train the scenario's candidates in turn within one budget; return the best by validation."""

    name = "auto"
    phases = ("candidates",)

    def __init__(self, config: AutoConfig | None = None, log=None) -> None:
        super().__init__(log)
        self.config = config or AutoConfig()

    def apply_budget(self, budget: Budget) -> None:
        """Keep the budget whole: :meth:`train` deals it out over the scenario's candidates."""
        self.budget = budget

    def candidates(self, task: RepairTask) -> tuple[CandidateSpec, ...]:
        """The candidates of ``task``'s scenario (:func:`scenario`)."""
        return {"failures": self.config.failures, "shift": self.config.shift,
                "field": self.config.field_set}[scenario(task)]

    def check(self, model, input_shape, split) -> None:
        for spec in self.config.failures + self.config.shift + self.config.field_set:
            get_repairer(spec.method, self._settings(spec)).check(model, input_shape, split)

    def estimate(self, task: RepairTask) -> dict[str, float]:
        """Each candidate's own estimate (from its method), the time budget capping their sum."""
        seconds, left = {}, self.budget.seconds
        for spec, epochs in zip(self.candidates(task), self._epoch_shares(task)):
            if epochs == 0 or (left is not None and left < spec.min_seconds):
                continue
            method = get_repairer(spec.method, self._settings(spec), Budget(epochs=epochs) if epochs else None)
            with failure_weight(task, spec.fail_weight):
                own = sum(method.estimate(task).values())
            seconds[spec.name] = own if left is None else min(own, left)
            left = None if left is None else left - seconds[spec.name]
        return seconds

    def train(self, task: RepairTask, deadline: Deadline) -> Candidate:
        specs, clock = self.candidates(task), deadline.clock
        settings, details, seconds = self.config.settings, {}, {}
        localised = settings.block
        records, trained = [], []  # trained: (spec, candidate, record) of each candidate that ran
        epochs = self._epoch_shares(task)
        finished = {spec.name: _load_candidate(self.work_dir / spec.name, task) for spec in specs} \
            if self.work_dir else {}
        spent = sum(saved[1]["seconds"] for saved in finished.values() if saved is not None)
        if spent and deadline.at is not None:  # a resumed run: what the finished candidates used is spent
            deadline = Deadline(deadline.at - spent, clock, deadline.checks)
        for index, spec in enumerate(specs):
            if finished.get(spec.name) is not None:
                candidate, record = finished[spec.name]
                self.log(f"auto: {spec.name} finished before the resume (validation {record['val_accuracy']:.4f})")
            else:
                left = deadline.left()
                record = {"name": spec.name, "method": spec.method, "fail_weight": spec.fail_weight,
                          "retain_weight": spec.retain_weight}
                if epochs[index] == 0 or (left is not None and left < max(spec.min_seconds, 1e-9)):
                    why = "no epoch of the budget left" if epochs[index] == 0 else \
                        f"{left:.1f} s of the budget left, it needs {spec.min_seconds:g} s"
                    records.append(record | {"status": f"skipped: {why}"})
                    self.log(f"auto: {spec.name} skipped ({why})")
                    continue
                if localised is None and spec.method in LOCALISING:  # once, when a candidate first needs it
                    started = clock()
                    localised, details["localization"] = localised_block(task, settings.localize,
                                                                         settings.localize_rows)
                    seconds["localize"] = clock() - started
                    left = deadline.left()
                runnable = [s for s in specs[index:] if s.share > 0]
                share = None if left is None or spec.share == 0 else left * spec.share / sum(s.share for s in runnable)
                block = localised if spec.method in LOCALISING else settings.block
                method = get_repairer(spec.method, replace(self._settings(spec), block=block),
                                      Budget(epochs=epochs[index]) if epochs[index] else None, log=self.log)
                method.work_dir = self.work_dir / spec.name if self.work_dir else None
                self.log(f"auto: candidate {index + 1}/{len(specs)} {spec.name}"
                         + (f" ({share:.0f} s of {left:.0f} s left)" if share is not None else ""))
                tick = clock()
                torch.manual_seed(task.seed)
                with failure_weight(task, spec.fail_weight):
                    candidate = method.train(task, deadline.sooner(share))
                record |= {"status": "ran", "share_seconds": None if share is None else round(share, 2),
                           "seconds": round(clock() - tick, 2),
                           **validation_figures(task, candidate.model, candidate.view),
                           "block": candidate.block or candidate.details.get("unit"),
                           "new_operations": _new_operations(candidate.genotype),
                           "epochs": _epochs(candidate.details), "image_passes": candidate.details.get("image_passes"),
                           "notes": candidate.details.get("notes", [])}
                if method.work_dir is not None and candidate.genotype is None:  # the search resumes from its files
                    _save_candidate(method.work_dir, candidate, record)
                self.log(f"auto: {spec.name} validation {record['val_accuracy']:.4f} (loss {record['val_loss']:.4f}, "
                         f"negative flips {record['val_negative_flip_rate']:.2%}), {record['seconds']:.1f} s")
            records.append(record)
            seconds[spec.name] = record["seconds"]
            trained.append((spec, candidate, record))
        options = [self._best_option(task, spec.name, candidate, record) for spec, candidate, record in trained]
        if self.config.soup:
            soup = self._soup(task, trained)
            if soup is not None:
                records.append(soup[2])
                options.append(soup)
        passes = [r["image_passes"] for r in records if r.get("image_passes") is not None]
        shared = {"scenario": scenario(task), "flip_weight": self.config.flip_weight, "candidates": records,
                  "image_passes": round(sum(passes), 3) if passes else None}
        if not options:  # the budget ran out before any candidate: the original, unchanged
            return Candidate(copy.deepcopy(task.model), details | shared | {"chosen": None, "chosen_mix": None},
                             seconds)
        options.sort(key=lambda option: option[0], reverse=True)
        offered = options[:max(1, self.config.keep_options)]
        shared["offered"] = [{"option": option.label, "val_accuracy": record["val_accuracy"],
                              "val_negative_flip_rate": record["val_negative_flip_rate"]}
                             for _, option, record in offered]
        built = [self._offered(option, details, shared, seconds, trained) for _, option, _ in offered]
        self.log("auto: options for the keep rule, best validated first: " + ", ".join(
            f"{entry['option']} {entry['val_accuracy']:.4f}" for entry in shared["offered"]))
        return replace(built[0], alternatives=built[1:])

    def _score(self, figures: dict) -> tuple[float, float]:
        return (figures["val_accuracy"] - self.config.flip_weight * figures["val_negative_flip_rate"],
                -figures["val_loss"])

    def _best_option(self, task: RepairTask, name: str, candidate: Candidate,
                     record: dict) -> tuple[tuple, Candidate, dict]:
        """``(score, option, its figures)``: the best-scored of ``candidate`` as trained and its
        interpolations (:meth:`_options`), labelled ``name`` (and ``α``)."""
        best = max(self._options(task, candidate, record), key=lambda option: self._score(option[2]))
        alpha, option, figures = best
        label = name if alpha == 1.0 else f"{name} α {alpha:g}"
        return self._score(figures), replace(option, label=label, details=option.details | {
            "chosen": name, "chosen_mix": alpha}), figures

    def _soup(self, task: RepairTask, trained: list) -> tuple[tuple, Candidate, dict] | None:
        """The greedy soup of the trained candidates of the model's own architecture (see
        :class:`AutoConfig`): ``(score, option, record)``, or ``None`` with fewer than two of them
        or when no second candidate joins."""
        members = sorted(((self._score(record), spec.name, candidate) for spec, candidate, record in trained
                          if candidate.genotype is None), key=lambda member: member[0], reverse=True)
        if len(members) < 2:
            return None
        chosen, soup, figures = [members[0][1]], members[0][2].model, None
        best = members[0][0]
        for score, name, candidate in members[1:]:
            trial = average([*(m[2].model for m in members if m[1] in chosen), candidate.model])
            trial_figures = validation_figures(task, trial)
            if self._score(trial_figures) > best:
                chosen, soup, figures, best = chosen + [name], trial, trial_figures, self._score(trial_figures)
        if figures is None:
            return None
        record = {"name": "soup", "method": "average", "members": chosen, "status": "ran", **figures}
        self.log(f"auto: soup of {', '.join(chosen)} validation {figures['val_accuracy']:.4f}")
        option = Candidate(soup, {"chosen": "soup", "chosen_mix": 1.0, "soup": chosen}, label="soup")
        return best, option, record

    @staticmethod
    def _offered(option: Candidate, details: dict, shared: dict, seconds: dict, trained: list) -> Candidate:
        """An option handed to the keep rule, with the run's details: the localisation when the
        option trained the localised block, else under ``localization_of_other_candidates``."""
        own = dict(details)
        method = next((spec.method for spec, _, _ in trained if spec.name == option.details["chosen"]), None)
        if "localization" in own and method not in LOCALISING:
            own["localization_of_other_candidates"] = own.pop("localization")  # not this option's block
        return replace(option, details=option.details | own | shared,
                       phase_seconds=seconds)

    def _options(self, task: RepairTask, candidate: Candidate, record: dict) -> list[tuple[float, Candidate, dict]]:
        """``(α, candidate, validation figures)`` for the candidate as trained (α 1) and, when it
        keeps the model's architecture, each of :attr:`AutoConfig.mixes` (recorded in ``record``)."""
        options = [(1.0, candidate, record)]
        if candidate.genotype is not None or not self.config.mixes:
            return options
        record["mixes"] = []
        for alpha in self.config.mixes:
            mixed = replace(candidate, model=interpolate(task.model, candidate.model, alpha))
            figures = validation_figures(task, mixed.model, mixed.view)
            record["mixes"].append({"alpha": alpha} | figures)
            options.append((alpha, mixed, figures))
        self.log(f"auto: {record['name']} mixed towards the original: " + ", ".join(
            f"α {m['alpha']:g} {m['val_accuracy']:.4f} ({m['val_negative_flip_rate']:.2%})" for m in record["mixes"]))
        return options

    def _settings(self, spec: CandidateSpec) -> RepairSettings:
        settings = self.config.settings
        if spec.retain_weight > 0:
            settings = replace(settings, retain=RetainConfig("distill", spec.retain_weight, settings.retain.temperature))
        return settings

    def _epoch_shares(self, task: RepairTask) -> list[int | None]:
        """Each candidate's epochs: ``None`` (its own schedule) without an epoch budget, else the
        budget dealt out in order (a method with two phases needs two)."""
        specs, total = self.candidates(task), self.budget.epochs
        if total is None:
            return [None] * len(specs)
        shares = [total // len(specs) + (index < total % len(specs)) for index in range(len(specs))]
        return [share if share >= len(get_repairer(spec.method).phases) else 0 for spec, share in zip(specs, shares)]


CANDIDATE_FILE = "candidate.pt"


def _save_candidate(folder: Path, candidate: Candidate, record: dict) -> None:
    """A finished candidate of the same architecture as the model (its weights, its record and
    details), written atomically into ``folder`` so that a resumed run does not train it again."""
    import io

    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"state": candidate.model.state_dict(), "block": candidate.block or "",
                "record": json.dumps(json_ready(record)), "details": json.dumps(json_ready(candidate.details)),
                "phase_seconds": json.dumps(candidate.phase_seconds)}, buffer)
    write_bytes_atomically(folder / CANDIDATE_FILE, buffer.getvalue())


def _load_candidate(folder: Path, task: RepairTask) -> tuple[Candidate, dict] | None:
    """The candidate :func:`_save_candidate` wrote into ``folder`` (``None`` when there is none),
    rebuilt on a copy of ``task.model`` with its cached block inputs' view when it trained on them."""
    path = folder / CANDIDATE_FILE
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model = copy.deepcopy(task.model)
        model.load_state_dict(saved["state"])
    except Exception as error:
        raise ArchRepairError(f"cannot resume from {str(path)!r} ({error}); rerun without --resume to start afresh") \
            from None
    details, block = json.loads(saved["details"]), saved["block"] or None
    view = task.block_view(block, folder.parent) if block and details.get("prefix_cache") == "on" else None
    candidate = Candidate(model.to(task.device), details, json.loads(saved["phase_seconds"]), block, view=view)
    return candidate, json.loads(saved["record"])


@contextmanager
def failure_weight(task: RepairTask, weight: float | None) -> Iterator[None]:
    """``task`` with its failure weight set to ``weight`` (``None``: unchanged) while the block returns.
    The task itself is changed, not a copy, because its cached block inputs (``task.views``) draw their
    batches through the task that built them."""
    if weight is None:
        yield
        return
    saved = task.config
    task.config = replace(saved, fail_weight=weight)
    try:
        yield
    finally:
        task.config = saved


def scenario(task: RepairTask) -> str:
    """``"field"`` (the failures come from a field set), ``"shift"`` (from a corruption) or ``"failures"``."""
    if task.split.source == "field":
        return "field"
    return "shift" if task.config.corruption is not None else "failures"


def average(models: list[nn.Module]) -> nn.Module:
    """A copy of ``models[0]`` whose floating-point weights and buffers are the mean of ``models``'
    (all of one architecture); integer buffers are the first's."""
    mixed = copy.deepcopy(models[0])
    states = [model.state_dict() for model in models]
    with torch.no_grad():
        for name, value in mixed.state_dict().items():
            if value.is_floating_point():
                value.copy_(torch.stack([state[name].to(value.device) for state in states]).mean(0))
    return mixed


def interpolate(original: nn.Module, candidate: nn.Module, alpha: float) -> nn.Module:
    """A copy of ``candidate`` (the architecture of ``original``) whose floating-point weights and
    buffers are ``θ_original + alpha (θ_candidate - θ_original)``; integer buffers (BatchNorm's batch
    count) are the candidate's. ``alpha`` 0 is the original's weights, 1 the candidate's."""
    mixed = copy.deepcopy(candidate)
    start = original.state_dict()
    with torch.no_grad():
        for name, value in mixed.state_dict().items():
            if value.is_floating_point():
                value.copy_(start[name].to(value.device) + alpha * (value - start[name].to(value.device)))
    return mixed


def _epochs(details: dict) -> dict[str, int]:
    """Epochs trained per phase of a candidate (``history`` for a single-phase method)."""
    return {key: len(details[key]) for key in ("search", "finetune", "history") if isinstance(details.get(key), list)}


def _new_operations(genotype: dict | None) -> int | None:
    """Edges of a searched block whose operation is not the block's own (``None``: nothing was searched)."""
    if genotype is None:
        return None
    return sum(edge["op"] != "original" for edge in genotype["edges"])


@register_repairer("auto", "the default: the bench's best candidates for the scenario in one budget; the best "
                           "validated that passes the keep rule", searches=True, version=2)
def auto(settings: RepairSettings) -> AutoRepair:
    return AutoRepair(AutoConfig(settings=settings))


__all__ = ["AutoConfig", "AutoRepair", "CandidateSpec", "FAILURE_CANDIDATES", "FIELD_CANDIDATES", "SHIFT_CANDIDATES",
           "average", "interpolate", "scenario"]
