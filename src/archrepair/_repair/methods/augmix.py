"""Repair by fine-tuning the whole network on AugMix-augmented ``D_repair`` with the Jensen-Shannon
consistency loss (cross-entropy on the clean view plus ``λ = 12`` times the JSD of the clean and two
augmented views): plain (``augmix``, DeepRepair's own ablation), with a style operation guided by
``D_fail`` (``deeprepair``), or with operation weights guided by ``D_fail`` (``fewshot-recon``).

``deeprepair`` (Yu et al., IEEE Trans. Reliability 2021): per class, k-means (k = 5) of ``D_fail``'s
standardised pixels; one random member per (class, cluster) is a style reference; the style
operation renders an image in a random reference's style and is one operation among AugMix's (width
3, depth 1-3). The original's WCT2 style transfer needs weights that are not available offline; the
stand-in is weight-free (:func:`~archrepair._repair.augment.style_transfer`: Fourier-amplitude
transfer plus per-channel statistics). A class with fewer failures than clusters uses what it has
(its count is in ``details``). Departures: the shared weight training (optimiser, schedule, budget)
instead of lr 0.1 for 100 epochs, and selection on validation examples, never the test set.

``fewshot-recon``: a **reconstruction** of Few-Shot guided mix (Ren et al., ICSME 2020), whose full
description could not be found: AugMix's operations plus four corruption-like ones (noise, blur,
contrast loss, haze) are each scored by how close they bring a sample of training images to
``D_fail`` in the model's penultimate feature space (distance of the means), the scores become
sampling weights (softmax at temperature ``τ``: the spread of the distances), and ``D_fail`` counts
twice per epoch. Not the original; named so in every report.

An epoch is one pass over the fit rows; it costs three image passes (the clean and two augmented
views), stated in ``details``.

Example:
    >>> result = get_repairer("deeprepair").repair(task)   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ...budget import Deadline
from ...hooks import run_with_hooks
from ...train import TrainConfig, fit
from ..augment import OPS, Op, augmix, denormalised, jensen_shannon, normalised, style_transfer
from ..base import Candidate, ConfiguredRepairer, image_passes
from ..estimate import batch_step_seconds, pass_seconds
from ..layer_features import last_linear
from ..registry import RepairSettings, default_train, register_repairer
from ..task import RepairTask

GUIDES = ("none", "style", "weights")


@dataclass
class AugMixConfig:
    """``guide``: ``none`` (AugMix), ``style`` (DeepRepair) or ``weights`` (the few-shot
    reconstruction); ``consistency``: the JSD weight λ; ``clusters``: k of DeepRepair's per-class
    k-means; ``severity``, ``width``: AugMix's; ``fail_weight``: how often ``D_fail`` counts per epoch
    (``None``: the task's); ``train``: the shared weight training."""

    guide: str = "none"
    consistency: float = 12.0
    clusters: int = 5
    severity: float = 3.0
    width: int = 3
    fail_weight: float | None = None
    guide_rows: int = 512
    train: TrainConfig = field(default_factory=default_train)


class AugmentedViews:
    """A training loader's batches as ``[clean; view 1; view 2]`` (normalised, ``(3B, C, H, W)``),
    labels and rows repeated; the views are made in ``[0, 1]`` space by ``augment(images)``."""

    def __init__(self, loader, augment, mean, std, views: int = 3) -> None:
        self.loader, self.augment, self.mean, self.std, self.views = loader, augment, mean, std, views
        self.device = loader.device

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __iter__(self):
        for images, labels, rows in self.loader:
            plain = denormalised(images, self.mean, self.std).clamp(0, 1)
            augmented = [normalised(self.augment(plain), self.mean, self.std) for _ in range(self.views - 1)]
            yield torch.cat([images, *augmented]), labels.repeat(self.views), rows.repeat(self.views)


def style_bank(images: np.ndarray, labels: np.ndarray, clusters: int, seed: int) -> tuple[np.ndarray, dict[int, int]]:
    """DeepRepair's style references: per class, k-means (k = ``clusters``, or the class's count
    when smaller) of the standardised flattened images, one random member per cluster. Returns the
    references (rows of ``images``) and the number of clusters per class."""
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import scale

    rng, references, made = np.random.default_rng(seed), [], {}
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        k = min(clusters, len(members))
        flat = scale(images[members].reshape(len(members), -1).astype(np.float64))
        assignment = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(flat) if k > 1 else np.zeros(1, int)
        for cluster in range(k):
            references.append(rng.choice(members[assignment == cluster]))
        made[int(label)] = k
    return np.asarray(references), made


def _corruption_like() -> dict[str, Op]:
    """Four corruption-like operations for the few-shot reconstruction (levels in (0, 0.3] at severity 3)."""
    def noise(images, levels, generator):
        return images + levels.view(-1, 1, 1, 1) * torch.randn(images.shape, generator=generator)

    def blur(images, levels, generator):
        amount = (levels / 0.3).clamp(0, 1).view(-1, 1, 1, 1)
        return (1 - amount) * images + amount * nn.functional.avg_pool2d(images, 3, 1, 1, count_include_pad=False)

    def contrast(images, levels, generator):
        mean = images.mean((1, 2, 3), keepdim=True)
        return (images - mean) * (1 - 2 * levels.view(-1, 1, 1, 1)) + mean

    def haze(images, levels, generator):
        amount = levels.view(-1, 1, 1, 1)
        return (1 - amount) * images + amount * 0.7

    return {"noise": noise, "blur": blur, "contrast_loss": contrast, "haze": haze}


class AugMixRepair(ConfiguredRepairer):
    """Fine-tune the whole network on AugMix views with the JSD loss; see the module docstring."""

    config_type = AugMixConfig
    name = "augmix"

    def estimate(self, task: RepairTask) -> dict[str, float]:
        """The guide: a pass over ``D_fail`` and, for the few-shot weights, one over the guide sample
        per operation (the style bank's k-means is small beside it); training: timed batches of three
        views (augmentation included) and SGD steps, scaled to the epochs, and a validation pass each."""
        config = self.config
        model = copy.deepcopy(task.model).requires_grad_(True).train()
        failures = task.fit_failures
        guide = pass_seconds(model, task, failures) if config.guide != "none" else 0.0
        if config.guide == "weights":
            guide += (len(OPS) + 4) * pass_seconds(model, task, task.fit_indices[:config.guide_rows])
        generator = torch.Generator().manual_seed(0)
        loader = task.loader(task.fit_indices, config.train.batch_size, shuffle=True, with_rows=True,
                             fail_weight=config.fail_weight)
        views = AugmentedViews(loader, lambda images: augmix(images.cpu(), generator, severity=config.severity).to(
            images.device), task.record.mean, task.record.std)
        per_epoch = len(loader) * batch_step_seconds(model, views, task.amp) + pass_seconds(model, task, task.val_indices)
        return {"guide": guide, "train": config.train.epochs * per_epoch}

    def train(self, task: RepairTask, deadline: Deadline) -> Candidate:
        started, config = time.perf_counter(), self.config
        model = copy.deepcopy(task.model).requires_grad_(True)
        generator = torch.Generator().manual_seed(task.seed + 41)
        names, weights, extra, details = list(OPS), None, {}, {"guide": config.guide}
        if config.guide == "style":
            extra["style"], details["style"] = self._style_op(task)
            names.append("style")
        if config.guide == "weights":
            extra = _corruption_like()
            names += list(extra)
            weights, details["op_weights"] = self._guided_weights(task, model, names, extra, generator)
        guided = time.perf_counter()

        def augment(images: torch.Tensor) -> torch.Tensor:
            return augmix(images.cpu(), generator, names, weights, config.width, severity=config.severity,
                          extra=extra).to(images.device)

        loader = task.loader(task.fit_indices, config.train.batch_size, shuffle=True, seed_offset=43, with_rows=True,
                             fail_weight=config.fail_weight)
        views = AugmentedViews(loader, augment, task.record.mean, task.record.std)

        def loss_fn(logits, labels, rows, inputs):
            clean = len(logits) // 3
            return nn.functional.cross_entropy(logits[:clean], labels[:clean]) + config.consistency * jensen_shannon(logits)

        history = fit(model, views, task.schedule(config.train), val_loader=task.loader(task.val_indices),
                      description=self.name, deadline=deadline, loss_fn=loss_fn,
                      on_epoch=lambda e: self.log(f"{self.name} epoch {e.epoch + 1}: val {e.val_accuracy:.4f}"))
        details |= {"history": [asdict(e) for e in history.history], "stop_reason": history.stop_reason,
                    "image_passes": image_passes(task, 3 * len(loader.indices) * history.epochs_run), "views": 3,
                    "prefix_cache": "off: the whole network trains"}
        return Candidate(model, details, {"guide": guided - started, "train": time.perf_counter() - guided})

    def _style_op(self, task: RepairTask) -> tuple[Op, dict]:
        """The style operation and what the bank holds: references from ``D_fail``'s clusters."""
        failures = task.fit_failures
        picked, per_class = style_bank(task.repair.x[failures], task.repair.y[failures], self.config.clusters, task.seed)
        references = torch.from_numpy(task.repair.x[failures[picked]]).permute(0, 3, 1, 2).float() / 255.0

        def style(images, levels, generator):
            chosen = torch.randint(len(references), (len(images),), generator=generator)
            beta = 0.01 + 0.09 * torch.rand(len(images), generator=generator)
            return style_transfer(images, references[chosen], beta)

        short = {label: k for label, k in per_class.items() if k < self.config.clusters}
        if short:
            self.log(f"{self.name}: classes with fewer failures than {self.config.clusters} clusters use what they "
                     f"have: {short}")
        return style, {"references": int(len(references)), "clusters_per_class": per_class,
                       "stand_in": "Fourier amplitude transfer + channel statistics (WCT2 weights not available)"}

    def _guided_weights(self, task: RepairTask, model: nn.Module, names: list[str], extra: dict[str, Op],
                        generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """Sampling weights of ``names``: softmax of minus the distance between the mean penultimate
        features of a training sample through each operation and those of ``D_fail``."""
        layer = model.get_submodule(last_linear(model))
        failures = task.fit_failures
        others = task.fit_others
        sample = np.sort(np.random.default_rng(task.seed + 47).choice(others, min(len(others), self.config.guide_rows),
                                                                      replace=False))

        def mean_features(rows: np.ndarray, transform=None) -> torch.Tensor:
            captured = []
            hook = (layer, lambda module, inputs: captured.append(inputs[0].detach().flatten(1)))
            for images, _ in task.loader(rows):
                if transform is not None:
                    plain = denormalised(images, task.record.mean, task.record.std).clamp(0, 1)
                    images = normalised(transform(plain), task.record.mean, task.record.std)
                run_with_hooks(model, images, pre_hooks=[hook])
            return torch.cat(captured).mean(0)

        target = mean_features(failures)
        table = OPS | extra
        distances = []
        for index, name in enumerate(names):
            def through(images, name=name):
                levels = torch.full((len(images),), self.config.severity / 10.0)
                return table[name](images.cpu(), levels, generator).clamp(0, 1).to(images.device)
            distances.append(float((mean_features(sample, through) - target).norm()))
        distances = torch.tensor(distances)
        weights = torch.softmax(-(distances - distances.min()) / distances.std().clamp_min(1e-6), 0)
        self.log(f"{self.name}: operation weights " + ", ".join(f"{n} {w:.2f}" for n, w in zip(names, weights.tolist())))
        return weights, dict(zip(names, [round(w, 4) for w in weights.tolist()]))


@register_repairer("augmix", "baseline: fine-tune the network on AugMix views with the JSD loss (no corruption ops)")
def augmix_repair(settings: RepairSettings) -> AugMixRepair:
    return AugMixRepair(AugMixConfig("none", train=settings.train))


@register_repairer("deeprepair", "baseline: AugMix + JSD with a style operation from D_fail's clusters (Yu et al.; "
                                 "weight-free style stand-in)")
def deeprepair(settings: RepairSettings) -> AugMixRepair:
    return AugMixRepair(AugMixConfig("style", train=settings.train))


@register_repairer("fewshot-recon", "baseline: a reconstruction of Few-Shot guided mix (operations weighted by "
                                    "closeness to D_fail; not the original)")
def fewshot_recon(settings: RepairSettings) -> AugMixRepair:
    return AugMixRepair(AugMixConfig("weights", fail_weight=2.0, train=settings.train))
