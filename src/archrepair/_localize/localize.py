"""Vulnerable block localisation (paper Algorithm 1): spectrum, gradients, reweighting, block table."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import ArchRepairError
from ..fileio import write_text_atomically
from ..models import resolve_blocks
from .collect import NeuronStatistics, collect_statistics
from .neurons import NeuronLayer, find_neuron_layers
from .registry import get_localizer, list_localizers
from .shift import Normaliser, block_shift, find_normalisers
from .spectrum import FORMULAS, reweight, suspiciousness

TOP_LEVELS = (10, 20, 30, 40, 50, 75, 100, 150)  # the paper's epsilon_10 ... epsilon_150
METHODS = tuple(list_localizers())  # the built-in ones; list_localizers() also has later registrations


LOCALIZE_ROWS = 1000
"""Repairs localise on ``D_fail`` plus at most this many other fit rows by default: on both shared
ResNet-18 models 1,000 rows chose the block that all 46,000 chose, for both localisers, on every
seed tried (8 of 8), in 5.6 s instead of 113 s (``benchmarks/localize_rows.py``)."""


@dataclass
class LocalizeConfig:
    """``threshold``: activation threshold on a neuron's normalised, spatially averaged output.
    ``formula``: tarantula (the paper), ochiai or dstar. ``levels``: top-k counts that define the
    thresholds ``epsilon_k``; ``level``: the one that picks the block. ``absolute``: an absolute
    threshold on the reweighted score that replaces ``level`` when given. ``method``: what picks
    the block: ``spectrum`` (the paper's Algorithm 1: most vulnerable neurons by the reweighted
    score) or ``shift`` (the block that adds the most normalisation-statistics shift,
    :mod:`.shift`; finds blocks whose weights were damaged; needs BatchNorm layers in the blocks).
    Both are measured and reported either way when the model has BatchNorm layers.
    ``shift_ratio``: damage shifts every later block too, so ``shift`` names the earliest block
    whose added shift is at least this fraction of the largest block's."""

    threshold: float = 0.0
    formula: str = "tarantula"
    levels: tuple[int, ...] = TOP_LEVELS
    level: int = 50
    absolute: float | None = None
    method: str = "spectrum"
    shift_ratio: float = 0.5

    def __post_init__(self) -> None:
        get_localizer(self.method)  # an unknown name lists the registered ones
        if self.formula not in FORMULAS:
            raise ArchRepairError(f"unknown formula {self.formula!r}; choose one of {', '.join(FORMULAS)}")
        if self.level < 1:
            raise ArchRepairError(f"the localisation level must be 1 or more (top-k neurons), got {self.level}")
        if not 0 < self.shift_ratio <= 1:
            raise ArchRepairError(f"the shift ratio must be above 0 and at most 1, got {self.shift_ratio}")
        self.levels = tuple(sorted(set(self.levels) | {self.level}))


@dataclass
class BlockRow:
    """One block: its neuron count, vulnerable counts per level (``"top50"``: count among the 50
    highest reweighted scores, ``"abs"`` for the absolute threshold), mean scores, and the
    normalisation-statistics shift it adds (``None`` without BatchNorm layers)."""

    block: str
    neurons: int
    vulnerable: dict[str, int]
    mean_score: float
    mean_spectrum: float
    mean_gradient: float
    shift: float | None = None


@dataclass
class LocalizationReport:
    """What the localiser found; ``ranking_*`` are block names, most suspicious first."""

    chosen: str
    criterion: str
    blocks: list[BlockRow]
    ranking_reweighted: list[str]
    ranking_spectrum: list[str]
    ranking_gradient: list[str]
    correct: int
    misclassified: int
    config: dict
    extra: dict = field(default_factory=dict)
    ranking_shift: list[str] = field(default_factory=list)
    format_version: int = 1

    def to_json(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        write_text_atomically(Path(path), json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "LocalizationReport":
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            raw["blocks"] = [BlockRow(**row) for row in raw["blocks"]]
            return cls(**raw)
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise ArchRepairError(f"{str(path)!r} is not a localisation report from `archrepair localize --out` "
                                  f"({type(error).__name__})") from None


def localize(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    input_shape: tuple[int, int, int],
    blocks: list[str] | None = None,
    config: LocalizeConfig | None = None,
    progress: bool = True,
) -> LocalizationReport:
    """Find the block most to blame for the misclassified examples among ``batches`` (``D_repair``).

    Args:
        model: the classifier (not modified); its device must match the batches'.
        batches: ``(images (B, C, H, W) normalised, labels (B,))`` of ``D_repair``: the failures
            and a sample of training examples. Correct and misclassified are decided by the model.
        input_shape: ``(C, H, W)``, for the one tracing pass that finds the neurons.
        blocks: block names (default: the model's automatic blocks).
    """
    config = config or LocalizeConfig()
    localizer = get_localizer(config.method)
    blocks = resolve_blocks(model, blocks)
    traced = copy.deepcopy(model).cpu()  # a copy for the tracing passes, so the model stays where it is
    layers = find_neuron_layers(traced, blocks, input_shape)
    neurons = sum(layer.size for layer in layers)
    if localizer.uses_level and config.absolute is None and config.level > neurons:
        raise ArchRepairError(f"level {config.level} (top-k neurons) is above the {neurons} neurons of blocks "
                              f"{', '.join(blocks)}; give a level of at most {neurons}")
    normalisers = find_normalisers(traced, blocks, input_shape)
    if localizer.needs_batchnorm and not any(n.block for n in normalisers):
        raise ArchRepairError(f"method {config.method!r} needs BatchNorm layers (with running statistics) inside the "
                              "blocks; this model has none: use method 'spectrum'")
    stats = collect_statistics(model, layers, batches, config.threshold, progress, [n.path for n in normalisers])
    if stats.misclassified == 0:
        raise ArchRepairError("the model classifies every given example correctly; there is nothing to localise")
    return summarise(stats, layers, blocks, config, normalisers)


def summarise(stats: NeuronStatistics, layers: list[NeuronLayer], blocks: list[str], config: LocalizeConfig,
              normalisers: list[Normaliser] = ()) -> LocalizationReport:
    """Scores, thresholds and the block table from collected statistics (``stats.shifts`` belong
    to ``normalisers``, in order)."""
    block_of = torch.cat([torch.full((layer.size,), blocks.index(layer.block)) for layer in layers])
    spectrum = suspiciousness(config.formula, stats.n_ac, stats.n_nc, stats.n_am, stats.n_nm)
    scores = reweight(spectrum, stats.gradient, block_of)
    counts_re = _level_counts(scores, block_of, len(blocks), config)
    counts_sp = _level_counts(spectrum, block_of, len(blocks), config)
    deviation = reweight(torch.ones_like(spectrum), stats.gradient, block_of)  # gradient alone
    counts_gr = _level_counts(deviation, block_of, len(blocks), config)
    key = "abs" if config.absolute is not None else f"top{config.level}"
    shifts = block_shift(list(normalisers), stats.shifts, blocks) if normalisers else [float("nan")] * len(blocks)
    rows = []
    for index, block in enumerate(blocks):
        members = block_of == index
        rows.append(BlockRow(
            block=block,
            neurons=int(members.sum()),
            vulnerable={level: int(c[index]) for level, c in counts_re.items()},
            mean_score=float(scores[members].mean()) if members.any() else 0.0,
            mean_spectrum=float(spectrum[members].mean()) if members.any() else 0.0,
            mean_gradient=float(stats.gradient[members].mean()) if members.any() else 0.0,
            shift=None if math.isnan(shifts[index]) else shifts[index],
        ))
    means_re = [row.mean_score for row in rows]
    means_sp = [row.mean_spectrum for row in rows]
    means_gr = [float(deviation[block_of == i].mean()) if (block_of == i).any() else 0.0 for i in range(len(blocks))]
    ranking = _rank(blocks, counts_re[key], means_re)
    measured = [i for i in range(len(blocks)) if not math.isnan(shifts[i])]
    ranking_shift = [blocks[i] for i in sorted(measured, key=lambda i: (-shifts[i], i))]
    report = LocalizationReport(
        chosen="",
        criterion="",
        blocks=rows,
        ranking_reweighted=ranking,
        ranking_spectrum=_rank(blocks, counts_sp[key], means_sp),
        ranking_gradient=_rank(blocks, counts_gr[key], means_gr),
        correct=stats.correct,
        misclassified=stats.misclassified,
        config=asdict(config),
        ranking_shift=ranking_shift,
    )
    report.chosen, report.criterion = get_localizer(config.method).choose(report, config)
    return report


def _level_counts(scores: torch.Tensor, block_of: torch.Tensor, count: int, config: LocalizeConfig) -> dict[str, torch.Tensor]:
    """Vulnerable neurons per block for each top-k level and for the absolute threshold.

    At level k a neuron is vulnerable when its score is positive and at least the k-th highest
    score: exactly the top k neurons, plus any that tie with the k-th.
    """
    ordered = scores.sort(descending=True).values
    result = {}
    for level in config.levels:
        epsilon = ordered[min(level, len(ordered)) - 1]
        result[f"top{level}"] = torch.bincount(block_of[(scores >= epsilon) & (scores > 0)], minlength=count)
    if config.absolute is not None:
        result["abs"] = torch.bincount(block_of[scores > config.absolute], minlength=count)
    return result


def _rank(blocks: list[str], counts: torch.Tensor, means: list[float]) -> list[str]:
    order = sorted(range(len(blocks)), key=lambda i: (-int(counts[i]), -means[i], i))
    return [blocks[i] for i in order]
