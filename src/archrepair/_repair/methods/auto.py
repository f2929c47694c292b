"""``auto``, the default repair: the candidates that win somewhere on the held-out bench, trained in
turn within one budget; the best option of each is offered to the keep rule (:mod:`..keep`), which
returns the best validated that beats the original at the stated level (Holm's procedure over the
options), or the original.

The candidates, per scenario (:data:`FAILURE_CANDIDATES`, :data:`SHIFT_CANDIDATES`,
:data:`FIELD_CANDIDATES`): for failures from the deployment data as it is, the localised block
trained more without the failures (``train-more-block``, the best single method on the under-trained
ResNet-18), the block with the largest failure gradient trained with the failures at weight 0.5 and 1
(``block-gradient``), and the whole network (``network-gradient``); for failures under a corruption,
AugMix-style training (the best there) and the block with the failures; for failures from a field set,
only candidates that train on the field's images (the whole network first: it led the field bench by
about 4 points over block-level repairs). The paper's search comes last in every list and runs only
with ``min_seconds`` of the budget left. Apricot, which leads on the under-trained VGG-16, is not a
candidate: given shares of 15-23 s of 120 s it ran 33-63 s and changed no weight in 8 of 8 design
cells (its reduced models alone outlast a share); the greedy soup stands in for its weight averaging.
With a named block, the whole-network candidates are left out.

The budget (the share queue): each candidate trains its own schedule within its share of the time
available when it starts (in proportion to its ``share_weight`` among the candidates still to train:
on a field set the whole network, the best validated candidate on every design seed, takes two
shares), so that time one does not use (early stopping) goes to the next; its learning-rate schedule
anneals over its share (:meth:`~archrepair.budget.Deadline.sooner` with ``anneal``), so that a share
shorter than the schedule still ends at a low rate instead of being cut mid-way. Version 9 (these
two and the balanced field score below) against version 8 on design seeds (``benchmarks/auto_variants.py``,
validation only): the option offered first validated better in 7 of 8 pairs (field seeds 100-103,
ResNet-18 and VGG-16 under-trained seeds 100-101) and equal in 1; the whole network gained most
(80.9% to 82.9% on the test-failure cells), cut at 1-3 epochs of its 8 before. The time the
choice after training takes (a validation pass per option and soup trial) is kept out of the shares,
so that training and choosing end within the budget; an epoch budget is dealt out over the
candidates in order. A race (one epoch each, the best validated continuing from their weights with
the rest; auto versions 3-6, commit 692c770 and after) was measured on design seed 100 and lost on
validation in both cells compared (``benchmarks/auto_race.py``, ``results/auto_race.txt``): every
survivor pays its set-up (block-input cache, failure gradients) twice, and a first epoch of the
costly candidates (AugMix) eats the time the best would have used; it was removed.

The options: each trained candidate of the model's own architecture as trained and interpolated
towards the original (α 0.25, 0.5, 0.75), and a greedy soup of those candidates and the original
(averaged weights, Wortsman et al. 2022). The best-validated option of each candidate and the soup,
at most ``keep_options`` of them, go to the keep rule; ``details["candidates"]`` has every
candidate's record (epochs given and run, seconds, share, validation figures, the interpolations'),
``details["offered"]`` what the keep rule tested, ``result.keep["tests"]`` each test. With a work
folder (``repair --resume``) each finished candidate is saved there and a resumed run does not train
it again (its seconds count against the budget); the search resumes from its own per-epoch state.

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
from ...checkpoint import load_state
from ...fileio import json_ready, write_bytes_atomically
from ..base import Candidate, Repairer, same_weights, validation_figures
from ..registry import RepairSettings, get_repairer, register_repairer
from ..retain import RetainConfig
from ..task import RepairTask
from .archrepair import localised_block


@dataclass(frozen=True)
class CandidateSpec:
    """One candidate: the registered ``method`` it trains with, the task's failure weight replaced by
    ``fail_weight`` (``None``: the task's), focal distillation at ``retain_weight`` (0: none);
    ``shares``: it takes a share of the time left in proportion to its ``share_weight`` among the
    candidates still to train, else it trains after the others with what they left, when at least
    ``min_seconds`` are (the architecture search)."""

    name: str
    method: str
    fail_weight: float | None = None
    retain_weight: float = 0.0
    shares: bool = True
    min_seconds: float = 0.0
    share_weight: float = 1.0


WHOLE_NETWORK = ("network-gradient", "augmix")
"""Candidate methods that train the whole network: left out when the user names the block to repair."""

LOCALISING = ("train-more-block", "archrepair")
"""Methods that train the localised block: localised once and shared; a method that finds its own
block (``block-gradient``: the largest failure gradient) keeps its choice unless a block is given."""

SEARCH = CandidateSpec("archrepair+distill", "archrepair", retain_weight=10.0, shares=False, min_seconds=60.0)
FAILURE_CANDIDATES = (
    CandidateSpec("train-more-block", "train-more-block"),
    CandidateSpec("block-gradient-w0.5", "block-gradient", fail_weight=0.5),
    CandidateSpec("block-gradient", "block-gradient", fail_weight=1.0),
    CandidateSpec("network-gradient", "network-gradient", fail_weight=1.0),
    SEARCH,
)
SHIFT_CANDIDATES = (
    CandidateSpec("augmix", "augmix"),
    CandidateSpec("block-gradient", "block-gradient", fail_weight=1.0),
    SEARCH,
)
FIELD_CANDIDATES = (
    CandidateSpec("network-gradient", "network-gradient", fail_weight=1.0, share_weight=2.0),
    CandidateSpec("augmix", "augmix"),
    CandidateSpec("block-gradient", "block-gradient", fail_weight=1.0),
    CandidateSpec("archrepair", "archrepair", shares=False, min_seconds=15.0),
)
"""The candidates of each scenario, in the order they train: failures from the deployment data as it
is (``failures``), under a distribution shift (``shift``: the task's corruption), from a field set
(``field``: every candidate trains on the field's failures and images; the "train more" methods,
which never see them, are left out)."""


MIXES = (0.25, 0.5, 0.75)
"""The interpolations towards the original that are options too (see :class:`AutoConfig`)."""


@dataclass
class AutoConfig:
    """``failures``, ``shift``, ``field_set``: the candidates of each scenario (:data:`FIELD_CANDIDATES`);
    ``settings``: what every candidate's method is built from (a given ``block`` is every block-level
    candidate's block).

    Options are scored by ``val_accuracy - flip_weight · val_negative_flip_rate`` on the validation
    rows (ties: the lower loss); with ``balance_field``, on a field set ``val_accuracy`` is the mean of
    the field rows' and the home rows' accuracies, so that the population the repair is for counts as
    much as the (more numerous) home rows. ``anneal``: each single-phase candidate's schedule anneals
    over its share of the time. ``mixes``: besides each trained candidate of the model's own
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
    anneal: bool = True
    balance_field: bool = True


@dataclass
class _Trained:
    """A candidate that trained: its spec, its model and its record."""

    spec: CandidateSpec
    candidate: Candidate
    record: dict


class AutoRepair(Repairer):
    """Train the scenario's candidates within one budget; offer the best option of each to the keep rule."""

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
        for spec in self.candidates(task):
            if left is not None and left < spec.min_seconds:
                continue
            method = get_repairer(spec.method, self._settings(spec))
            with failure_weight(task, spec.fail_weight):
                own = sum(method.estimate(task).values())
            seconds[spec.name] = own if left is None else min(own, left)
            left = None if left is None else left - seconds[spec.name]
        return seconds

    def train(self, task: RepairTask, deadline: Deadline) -> Candidate:
        specs = self.candidates(task)
        run = _AutoRun(self, task, deadline, specs)
        sharing = [spec for spec in specs if spec.shares]
        epochs = self._epoch_shares(sharing)
        for index, spec in enumerate(sharing):  # each its own schedule within its share of the time left
            to_train = sum(later.share_weight for later in sharing[index:])
            run.train(spec, epochs=epochs[index], share=run.share_of(spec.share_weight / to_train))
        for spec in specs:
            if not spec.shares:  # after the others, with what they left
                run.train(spec, epochs=run.epochs, share=run.share_of(1.0))
        return self._choose(task, run)

    def _epoch_shares(self, specs: list[CandidateSpec]) -> list[int | None]:
        """Each candidate's epochs in the share queue: ``None`` (its own schedule) without an epoch
        budget, else the budget dealt out in order (a method with two phases needs two)."""
        total = self.budget.epochs
        if total is None:
            return [None] * len(specs)
        shares = [total // len(specs) + (index < total % len(specs)) for index in range(len(specs))]
        return [share if share >= len(get_repairer(spec.method).phases) else 0 for spec, share in zip(specs, shares)]

    def _choose(self, task: RepairTask, run: _AutoRun) -> Candidate:
        """The options offered to the keep rule, best validated first (see :class:`AutoConfig`)."""
        options = []
        for done in run.trained.values():
            if done.candidate.genotype is None and same_weights(task.model, done.candidate.model):
                done.record["status"] = "ran: no weight changed, not offered"
                self.log(f"auto: {done.spec.name} changed no weight; it is the original and is not offered")
                continue
            options.append(self._best_option(task, done))
        if self.config.soup:
            soup = self._soup(task, list(run.trained.values()))
            if soup is not None:
                run.records.append(soup[2])
                options.append(soup)
        passes = [r["image_passes"] for r in run.records if r.get("image_passes") is not None]
        shared = {"scenario": scenario(task), "flip_weight": self.config.flip_weight, "candidates": run.records,
                  "image_passes": round(sum(passes), 3) if passes else None}
        if not options:  # the budget ran out before any candidate: the original, unchanged
            return Candidate(copy.deepcopy(task.model), run.details | shared | {"chosen": None, "chosen_mix": None},
                             run.seconds)
        options.sort(key=lambda option: option[0], reverse=True)
        offered = options[:max(1, self.config.keep_options)]
        shared["offered"] = [{"option": option.label, "val_accuracy": figures["val_accuracy"],
                              "val_negative_flip_rate": figures["val_negative_flip_rate"]}
                             for _, option, figures in offered]
        built = [self._offered(option, run, shared) for _, option, _ in offered]
        self.log("auto: options for the keep rule, best validated first: " + ", ".join(
            f"{entry['option']} {entry['val_accuracy']:.4f}" for entry in shared["offered"]))
        return replace(built[0], alternatives=built[1:])

    def _score(self, figures: dict) -> tuple[float, float]:
        accuracy = figures["val_accuracy"]
        if self.config.balance_field and figures.get("val_field_accuracy") is not None \
                and figures.get("val_home_accuracy") is not None:
            accuracy = (figures["val_field_accuracy"] + figures["val_home_accuracy"]) / 2
        return accuracy - self.config.flip_weight * figures["val_negative_flip_rate"], -figures["val_loss"]

    def _best_option(self, task: RepairTask, done: _Trained) -> tuple[tuple, Candidate, dict]:
        """``(score, option, its figures)``: the best-scored of a trained candidate and its
        interpolations (:meth:`_options`), labelled with its name (and ``α``)."""
        alpha, option, figures = max(self._options(task, done.candidate, done.record),
                                     key=lambda option: self._score(option[2]))
        name = done.spec.name
        label = name if alpha == 1.0 else f"{name} α {alpha:g}"
        return self._score(figures), replace(option, label=label, details=option.details | {
            "chosen": name, "chosen_mix": alpha}), figures

    def _soup(self, task: RepairTask, trained: list[_Trained]) -> tuple[tuple, Candidate, dict] | None:
        """The greedy soup of the trained candidates of the model's own architecture and the original
        (see :class:`AutoConfig`; averaging with the original shrinks a soup towards it, as the
        interpolations do a candidate): ``(score, option, record)``, or ``None`` without a trained
        candidate or when nothing joins the best validated member."""
        usable = [done for done in trained if done.candidate.genotype is None and done.record["status"] == "ran"]
        if not usable:
            return None
        started = self.clock()
        members = sorted([(self._score(done.record), done.spec.name, done.candidate.model) for done in usable]
                         + [(self._score(validation_figures(task, task.model)), "original", task.model)],
                         key=lambda member: member[0], reverse=True)
        chosen, soup, figures, best = [members[0][1]], members[0][2], None, members[0][0]
        for _, name, model in members[1:]:
            trial = average([*(m[2] for m in members if m[1] in chosen), model])
            trial_figures = validation_figures(task, trial)
            if self._score(trial_figures) > best:
                chosen, soup, figures, best = chosen + [name], trial, trial_figures, self._score(trial_figures)
        if figures is None or (len(chosen) == 2 and "original" in chosen):
            return None  # nothing joined, or the original and one candidate: the interpolation at α 0.5
        record = {"name": "soup", "method": "average", "members": chosen, "status": "ran",
                  "seconds": round(self.clock() - started, 2), **figures}
        self.log(f"auto: soup of {', '.join(chosen)} validation {figures['val_accuracy']:.4f}")
        blocks = {done.candidate.block for done in usable if done.spec.name in chosen}
        block = blocks.pop() if len(blocks) == 1 else None  # every member changed one block: the soup did too
        return best, Candidate(soup, {"chosen": "soup", "chosen_mix": 1.0, "soup": chosen}, block=block,
                               label="soup"), record

    @staticmethod
    def _offered(option: Candidate, run: _AutoRun, shared: dict) -> Candidate:
        """An option handed to the keep rule, with the run's details: the localisation when the
        option trained the localised block, else under ``localization_of_other_candidates``."""
        own = dict(run.details)
        method = next((done.spec.method for done in run.trained.values() if done.spec.name == option.details["chosen"]),
                      None)
        if "localization" in own and method not in LOCALISING:
            own["localization_of_other_candidates"] = own.pop("localization")  # not this option's block
        return replace(option, details=option.details | own | shared, phase_seconds=run.seconds)

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


class _AutoRun:
    """One run of :class:`AutoRepair`: the deadline and epochs left, the candidates trained so far
    (``trained``, by name), every candidate's record in the order it ran (``records``), the seconds
    of each (``seconds``) and the localisation (``details``). With a work folder each finished
    candidate is saved there and a resumed run restores it instead of training it again (its seconds
    count against the budget)."""

    def __init__(self, auto: AutoRepair, task: RepairTask, deadline: Deadline, specs) -> None:
        self.auto, self.task, self.clock = auto, task, deadline.clock
        self.localised = auto.config.settings.block
        self.details, self.seconds, self.records = {}, {}, []
        self.trained: dict[str, _Trained] = {}
        self.epochs = auto.budget.epochs
        self.expected = sum(spec.shares for spec in specs)  # the candidates that train for sure
        self.pass_seconds = 0.0  # the longest validation pass seen: what the choice after training costs
        work = auto.work_dir
        self.saved = {} if work is None else {spec.name: _load_candidate(work / spec.name, task) for spec in specs}
        spent = sum(found[1]["seconds"] for found in self.saved.values() if found is not None)
        if spent and deadline.at is not None:  # a resumed run: what the finished candidates used is spent
            deadline = Deadline(deadline.at - spent, self.clock, deadline.checks)
        self.deadline = deadline

    def share_of(self, fraction: float) -> float | None:
        """``fraction`` of the seconds available (:meth:`available`; ``None``: no time budget)."""
        return None if self.deadline.at is None else self.available() * fraction

    def available(self) -> float:
        """Seconds left for training: the budget left less what the choice after training will take."""
        return max(self.deadline.left() - self._reserve(), 0.0)

    def _reserve(self) -> float:
        """Seconds the choice after training will take, so that it too fits in the budget: a validation
        pass per option and soup trial of every candidate expected to train, at the longest pass seen."""
        count = max(self.expected, len(self.trained))
        return (count * (1 + len(self.auto.config.mixes)) + count + 1) * self.pass_seconds

    def train(self, spec: CandidateSpec, epochs: int | None, share: float | None) -> None:
        """Train ``spec`` with ``epochs`` (``None``: its own schedule) within ``share`` seconds; skipped
        (and said so in its record) when the block to repair is named and it trains the whole network,
        or when the budget has no epoch or too few seconds left for it."""
        auto = self.auto
        if auto.config.settings.block is not None and spec.method in WHOLE_NETWORK:
            self.records.append(_record(spec) | {"status": f"skipped: it trains the whole network and the block to "
                                                           f"repair is given ({auto.config.settings.block})"})
            return
        found = self.saved.get(spec.name)
        if found is not None:
            candidate, figures = found
            auto.log(f"auto: {spec.name} finished before the resume (validation {figures['val_accuracy']:.4f})")
        else:
            left = None if self.deadline.at is None else self.available()
            needed = len(get_repairer(spec.method).phases)
            no_epoch = epochs == 0 or (self.epochs is not None and self.epochs < needed)
            if no_epoch or (left is not None and left < max(spec.min_seconds, 1e-9)):
                why = "no epoch of the budget left" if no_epoch else \
                    f"{left:.1f} s of the budget left, it needs {spec.min_seconds:g} s"
                self.records.append(_record(spec) | {"status": f"skipped: {why}"})
                auto.log(f"auto: {spec.name} skipped ({why})")
                return
            candidate, figures = self._train(spec, epochs, share)
        if self.epochs is not None:
            self.epochs -= figures["epochs_given"] or 0
        self.seconds[spec.name] = figures["seconds"]
        record = _record(spec) | {"status": "ran"} | figures | {
            "block": candidate.block or candidate.details.get("unit"), "new_operations": _new_operations(candidate.genotype),
            "epochs": _epochs(candidate.details), "image_passes": candidate.details.get("image_passes"),
            "notes": candidate.details.get("notes", [])}
        self.records.append(record)
        self.trained[spec.name] = _Trained(spec, candidate, record)

    def _train(self, spec: CandidateSpec, epochs: int | None, share: float | None) -> tuple[Candidate, dict]:
        auto, task, clock = self.auto, self.task, self.clock
        settings = auto._settings(spec)
        if self.localised is None and spec.method in LOCALISING:  # once, when a candidate first needs it
            started = clock()
            self.localised, self.details["localization"] = localised_block(task, settings.localize,
                                                                           settings.localize_rows)
            self.seconds["localize"] = clock() - started
        block = self.localised if spec.method in LOCALISING else settings.block
        method = get_repairer(spec.method, replace(settings, block=block), Budget(epochs=epochs) if epochs else None,
                              log=auto.log)
        method.work_dir = auto.work_dir / spec.name if auto.work_dir else None
        auto.log(f"auto: {spec.name}" + (f", {epochs} epoch(s)" if epochs else "")
                 + (f" within {share:.0f} s" if share is not None else ""))
        tick = clock()
        torch.manual_seed(task.seed)
        with failure_weight(task, spec.fail_weight):
            anneal = auto.config.anneal and len(method.phases) == 1
            candidate = method.train(task, self.deadline.sooner(share, anneal=anneal))
        seconds = round(clock() - tick, 2)
        started = clock()
        figures = validation_figures(task, candidate.model, candidate.view)
        self.pass_seconds = max(self.pass_seconds, clock() - started)
        figures |= {"epochs_given": epochs, "epochs_run": _epochs_run(candidate.details, epochs),
                    "share_seconds": None if share is None else round(share, 2), "seconds": seconds}
        if method.work_dir is not None and candidate.genotype is None:  # the search resumes from its own files
            _save_candidate(method.work_dir, candidate, figures)
        auto.log(f"auto: {spec.name}: validation {figures['val_accuracy']:.4f} (loss {figures['val_loss']:.4f}, "
                 f"negative flips {figures['val_negative_flip_rate']:.2%}), {seconds:.1f} s")
        return candidate, figures


def _record(spec: CandidateSpec) -> dict:
    return {"name": spec.name, "method": spec.method, "fail_weight": spec.fail_weight,
            "retain_weight": spec.retain_weight}


def _epochs_run(details: dict, given: int | None) -> int:
    """Epochs a candidate ran: its history's length when it keeps one, else those it was given (or 1)."""
    ran = sum(_epochs(details).values())
    return ran or given or 1


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
    model = copy.deepcopy(task.model)

    def restore(state: dict) -> dict:
        model.load_state_dict(state["state"])
        return state

    saved = load_state(path, restore)
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
                           "validated that passes the keep rule", searches=True, version=9)
def auto(settings: RepairSettings) -> AutoRepair:
    return AutoRepair(AutoConfig(settings=settings))


__all__ = ["AutoConfig", "AutoRepair", "CandidateSpec", "FAILURE_CANDIDATES", "FIELD_CANDIDATES", "SHIFT_CANDIDATES",
           "average", "interpolate", "scenario"]
