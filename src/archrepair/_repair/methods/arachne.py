"""Arachne (Sohn, Kang, Yoo; TOSEM 2023, arXiv 1912.12463): search-based repair of a few weights.

1. Bidirectional localisation on one linear layer (the last one by default, the original's scope):
   for every weight ``w_ji`` (output ``j``, input ``i``; no biases) the gradient loss
   ``GL = |Σ_x ∂L/∂w_ji|`` and the forward impact ``FI = front_ji · behind_j``, with
   ``front_ji`` the mean over inputs of ``|o_i·w_ji|`` normalised over ``i`` and ``behind_j`` the mean
   of ``|∂(Σ outputs)/∂z_j|`` normalised over ``j``. Each as a cost ``value on I_neg / (1 + value on
   I_pos)`` (``I_pos``: as many correctly classified rows as failures, drawn per class in proportion);
   the weights on the Pareto front of the two costs (maximising both) are the patch positions.
2. Differential evolution over those weights (the official ``de_vk``): population 100 drawn from
   ``N(mean, std)`` of the layer's weights, DE/rand/1/bin with ``F ~ U(0.5, 1)`` per generation and
   ``CR = 0.7`` (one position always crossed), values clipped to the layer's range widened
   (``min·2`` or ``min/2``, ``max·2`` or ``max/2``), greedy replacement; at most 100 generations, stopping
   when the best fitness has not changed for ``max(10, generations / 10)`` generations. Fitness
   ``f(I_pos) + α·f(I_neg)`` with ``f(S) = #correct + Σ_{x wrong} 1/(L(x) + 1)``, ``α = 10``.
   ``search="pso"``: the particle swarm of the first version, which the ArchRepair paper describes
   (100 particles, constriction with φ = 4.1, the same fitness and stopping rule).

Departures, stated in every report's ``details``: ``I_neg`` is ``D_fail`` (its rows the original
model misclassifies), ``I_pos`` a seeded class-stratified sample of ``positives`` correctly
classified training rows (the original uses all of them); a fitness evaluation runs the layer and
what follows on cached inputs (one matrix product for the last layer).

Example:
    >>> result = get_repairer("arachne").repair(task)   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...budget import Deadline
from ...data.splits import stratified_sample
from ...errors import ArchRepairError
from ..base import Candidate, ConfiguredRepairer, image_passes
from ..estimate import pass_seconds, seconds_per_call
from ..layer_features import LayerFeatures, last_linear, linear_layer
from ..registry import RepairSettings, register_repairer
from ..task import RepairTask

SEARCHES = ("de", "pso")


@dataclass
class ArachneConfig:
    """``layer``: the linear layer to patch (``None``: the model's last); ``search``: ``de``
    (official) or ``pso`` (first version); ``population`` and ``generations`` of the search;
    ``alpha``: the failures' weight in the fitness (the official ``patch_aggr``); ``positives``: the
    size of the sample of correctly classified training rows (``I_pos``); ``crossover``,
    ``mutation``: DE's ``CR`` and the range ``F`` is drawn from."""

    layer: str | None = None
    search: str = "de"
    population: int = 100
    generations: int = 100
    alpha: float = 10.0
    positives: int = 5000
    crossover: float = 0.7
    mutation: tuple[float, float] = (0.5, 1.0)

    def __post_init__(self) -> None:
        if self.search not in SEARCHES:
            raise ArchRepairError(f"unknown Arachne search {self.search!r}; choose one of {', '.join(SEARCHES)}")
        if self.population < 4 or self.generations < 1 or self.positives < 1:
            raise ArchRepairError("Arachne needs a population of at least 4, at least 1 generation and 1 positive")


def pareto_front(costs: np.ndarray) -> np.ndarray:
    """Indices of the rows of ``costs`` ``(N, 2)`` that no other row dominates (maximising both;
    of identical rows one is kept), in decreasing order of the first cost."""
    order = np.lexsort((-costs[:, 1], -costs[:, 0]))
    kept, best = [], -np.inf
    for index in order:
        if costs[index, 1] > best:
            kept.append(index)
            best = costs[index, 1]
    return np.asarray(kept, dtype=int)


def impacts(features: LayerFeatures, rows: np.ndarray, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(GL, FI)``, each ``(out_features, in_features)``, of the layer's weights on ``rows`` (indices
    into ``features``) with ``labels``; see the module docstring."""
    layer = features.layer
    weight = layer.weight
    captured = []
    hook = layer.register_forward_hook(lambda module, inputs, output: captured.append(output))
    weight.requires_grad_(True)
    try:
        with torch.enable_grad():
            logits = features.forward(features.inputs[rows])
            loss = nn.functional.cross_entropy(logits, labels, reduction="sum")
            gradient_loss, = torch.autograd.grad(loss, weight, retain_graph=True)
            to_output, = torch.autograd.grad(logits.sum(), captured[0])
    finally:
        hook.remove()
        weight.requires_grad_(False)
    behind = to_output.abs()
    behind = (behind / behind.sum(1, keepdim=True).clamp_min(1e-12)).mean(0)
    inputs, magnitude = features.layer_inputs[rows].abs(), weight.detach().abs()
    totals = (inputs @ magnitude.T).clamp_min(1e-12)  # (n, out): Σ_i |o_i w_ji| per input and output
    front = magnitude * ((1.0 / totals).T @ inputs) / len(rows)
    return gradient_loss.abs(), front * behind[:, None]


def localise(features: LayerFeatures, labels: torch.Tensor, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bidirectional localisation on ``features``' layer: the first ``count`` rows are ``I_neg``, the
    rest ``I_pos``, of which ``count`` (drawn per class in proportion, ``seed``) weigh the costs.
    Returns the patch positions ``(K, 2)`` (output, input) on the Pareto front and their costs ``(K, 2)``."""
    local = np.arange(len(labels))
    sampled = stratified_sample(local[count:], labels[count:].cpu().numpy(), count, seed)
    negative = impacts(features, local[:count], labels[:count])
    positive = impacts(features, sampled, labels[sampled])
    costs = torch.stack([(n / (1 + p)).flatten() for n, p in zip(negative, positive)], 1).cpu().numpy()
    front = pareto_front(costs)
    return np.stack(np.unravel_index(front, features.layer.weight.shape), 1), costs[front]


def fitness_of(logits: torch.Tensor, labels: torch.Tensor, negative: torch.Tensor, alpha: float) -> float:
    """``f(I_pos) + alpha·f(I_neg)``, ``f(S) = #correct + Σ_{x wrong} 1/(L(x) + 1)``; ``negative``
    marks the rows of ``I_neg``."""
    losses = nn.functional.cross_entropy(logits, labels, reduction="none")
    scores = torch.where(logits.argmax(1) == labels, torch.ones_like(losses), 1.0 / (losses + 1.0))
    return float(scores[~negative].sum() + alpha * scores[negative].sum())


class Arachne(ConfiguredRepairer):
    """Patch the few weights of one linear layer that the bidirectional localisation finds, by a
    search on the official fitness; see the module docstring."""

    config_type = ArachneConfig
    name = "arachne"
    phases = ("search",)

    def set_phase_epochs(self, phase: str, epochs: int) -> None:
        """Arachne has no epochs: it stops after its generations, its stopping rule or the deadline."""
        self.log(f"{self.name}: an epoch budget does not apply; it runs at most {self.config.generations} generations")

    def check(self, model, input_shape, split) -> None:
        """The layer to patch must be a linear layer of the model."""
        linear_layer(model, self.config.layer or last_linear(model))

    def estimate(self, task: RepairTask) -> dict[str, float]:
        """The localisation: one pass over ``D_repair`` (the cache, or the hook capture); the search:
        a timed fitness evaluation on as many rows as ``I_neg`` and ``I_pos`` hold, times the
        evaluations of every generation (the stopping rule off)."""
        model = copy.deepcopy(task.model).eval()
        layer = linear_layer(model, self.config.layer or last_linear(model))
        failures = len(task.fit_failures)
        rows = failures + min(self.config.positives, len(task.fit_indices) - failures)
        inputs = torch.randn(rows, layer.in_features, device=task.device)
        labels = torch.zeros(rows, dtype=torch.long, device=task.device)
        negative = torch.zeros(rows, dtype=torch.bool, device=task.device)
        with torch.no_grad():
            evaluation = seconds_per_call(lambda: fitness_of(layer(inputs), labels, negative, self.config.alpha))
        passes = pass_seconds(task.model, task, np.arange(len(task.repair.y)))
        return {"localise": passes, "search": evaluation * self.config.population * (self.config.generations + 1)}

    def train(self, task: RepairTask, deadline: Deadline) -> Candidate:
        started, config = time.perf_counter(), self.config
        model = copy.deepcopy(task.model).eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        path = config.layer or last_linear(model)
        negatives, positives = self._inputs(task)
        rows = np.concatenate([negatives, positives])
        features = LayerFeatures(task, model, path, rows)
        labels = torch.as_tensor(task.repair.y[rows], dtype=torch.long, device=features.inputs.device)
        negative = torch.zeros(len(rows), dtype=torch.bool, device=labels.device)
        negative[:len(negatives)] = True
        positions, costs = localise(features, labels, len(negatives), task.seed + 13)
        localised = time.perf_counter()
        weight = features.layer.weight.data
        original = weight[positions[:, 0], positions[:, 1]].clone()

        def fitness(values: np.ndarray) -> float:
            weight[positions[:, 0], positions[:, 1]] = torch.as_tensor(values, dtype=weight.dtype, device=weight.device)
            return fitness_of(features.logits(), labels, negative, config.alpha)

        start_fitness = fitness(original.cpu().numpy())
        search = _differential_evolution if config.search == "de" else _particle_swarm
        best, curve, stop_reason, evaluations = search(fitness, weight.cpu().numpy(), len(positions), config,
                                                       np.random.default_rng(task.seed + 17), deadline)
        fitness(best)  # leave the best patch in the layer
        self.log(f"{self.name}: {len(positions)} weights patched, fitness {start_fitness:.2f} -> {curve[-1]:.2f} "
                 f"in {len(curve) - 1} generations ({stop_reason})")
        details = {"layer": path, "search": config.search, "positions": positions.tolist(),
                   "original_values": original.tolist(), "patched_values": [float(v) for v in best],
                   "front_costs": costs.tolist(), "fitness_original": start_fitness, "fitness": curve,
                   "generations": len(curve) - 1, "evaluations": evaluations, "stop_reason": stop_reason,
                   "negatives": int(len(negatives)), "positives": int(len(positives)),
                   "alpha": config.alpha, "image_passes": image_passes(task, len(task.repair.y) if features.status == "on" else len(rows)), "prefix_cache": features.status}
        view = task.block_view(path) if features.status == "on" else None
        now = time.perf_counter()
        return Candidate(model, details, {"localise": localised - started, "search": now - localised}, view=view)

    def _inputs(self, task: RepairTask) -> tuple[np.ndarray, np.ndarray]:
        """``I_neg``: the fit rows of ``D_fail`` the original model misclassifies; ``I_pos``: a
        class-stratified sample of the correctly classified training fit rows."""
        predicted = task.original_logits().argmax(1).numpy()
        fit = task.fit_indices
        wrong = predicted[fit] != task.repair.y[fit]
        negatives = fit[wrong & (fit < task.repair.num_failures)]
        correct = fit[~wrong & (fit >= task.repair.num_failures)]
        if not len(negatives) or not len(correct):
            raise ArchRepairError("Arachne needs failures the model misclassifies and correctly classified rows; "
                                  f"this task has {len(negatives)} and {len(correct)}")
        return negatives, stratified_sample(correct, task.repair.y[correct], self.config.positives, task.seed + 11)



def _bounds(weight: np.ndarray) -> tuple[float, float]:
    """The official clipping range: the layer's minimum and maximum pushed outwards (×2 or /2)."""
    low, high = float(weight.min()), float(weight.max())
    return (low * 2 if low < 0 else low / 2), (high * 2 if high > 0 else high / 2)


class _Progress:
    """The best fitness per generation (``curve``, index 0: the initial population) and the
    official stopping rule: unchanged (float32) for more than ``max(10, generations / 10)``
    generations, or the deadline; ``reason``: ``generations``, ``unchanged`` or ``budget``."""

    def __init__(self, initial: float, generations: int, deadline: Deadline) -> None:
        self.curve, self.unchanged, self.reason = [initial], 0, "generations"
        self.patience, self.deadline = max(10, generations // 10), deadline

    def stop(self, best: float) -> bool:
        """Record a generation's best fitness; whether the search stops here."""
        self.unchanged = self.unchanged + 1 if np.float32(best) == np.float32(self.curve[-1]) else 0
        self.curve.append(best)
        if self.unchanged > self.patience:
            self.reason = "unchanged"
        elif self.deadline.expired():
            self.reason = "budget"
        return self.reason != "generations"


def _differential_evolution(fitness, weight: np.ndarray, size: int, config: ArachneConfig, rng: np.random.Generator,
                            deadline: Deadline):
    """DE/rand/1/bin as the official ``de_vk``; returns the best vector, the best fitness after each
    generation (index 0: the initial population), the stop reason and the evaluation count."""
    low, high = _bounds(weight)
    population = rng.normal(weight.mean(), weight.std(), size=(config.population, size))
    scores = np.array([fitness(member) for member in population])
    progress = _Progress(float(scores.max()), config.generations, deadline)
    for _ in range(config.generations):
        scale = rng.uniform(*config.mutation)
        for index in range(config.population):
            a, b, c = population[rng.choice(np.delete(np.arange(config.population), index), 3, replace=False)]
            crossed = rng.random(size) < config.crossover
            crossed[rng.integers(size)] = True
            trial = np.where(crossed, np.clip(a + scale * (b - c), low, high), population[index])
            score = fitness(trial)
            if score >= scores[index]:
                population[index], scores[index] = trial, score
        if progress.stop(float(scores.max())):
            break
    return population[int(scores.argmax())], progress.curve, progress.reason, config.population * len(progress.curve)


def _particle_swarm(fitness, weight: np.ndarray, size: int, config: ArachneConfig, rng: np.random.Generator,
                    deadline: Deadline):
    """Constricted particle swarm (φ = 4.1, χ ≈ 0.7298, c1 = c2 = φ/2), particles from ``N(mean, std)``
    of the layer's weights, velocities within ± the layer's weight range; same returns as DE."""
    low, high = _bounds(weight)
    phi = 4.1
    chi = 2.0 / abs(2.0 - phi - math.sqrt(phi * phi - 4.0 * phi))
    limit = float(weight.max() - weight.min())
    positions = rng.normal(weight.mean(), weight.std(), size=(config.population, size))
    velocities = np.zeros_like(positions)
    scores = np.array([fitness(p) for p in positions])
    own_best, own_scores = positions.copy(), scores.copy()
    progress = _Progress(float(scores.max()), config.generations, deadline)
    for _ in range(config.generations):
        leader = own_best[int(own_scores.argmax())]
        pull_own, pull_leader = rng.random((2, config.population, size)) * (phi / 2)
        velocities = chi * (velocities + pull_own * (own_best - positions) + pull_leader * (leader - positions))
        velocities = np.clip(velocities, -limit, limit)
        positions = np.clip(positions + velocities, low, high)
        scores = np.array([fitness(p) for p in positions])
        better = scores >= own_scores
        own_best[better], own_scores[better] = positions[better], scores[better]
        if progress.stop(float(own_scores.max())):
            break
    return own_best[int(own_scores.argmax())], progress.curve, progress.reason, config.population * len(progress.curve)


@register_repairer("arachne", "baseline: patch the few last-layer weights bidirectional localisation finds, by "
                              "differential evolution (Sohn et al.)", spreads=False)
def arachne(settings: RepairSettings) -> Arachne:
    return Arachne(ArachneConfig(layer=settings.layer))
