"""Spectrum-based suspiciousness of neurons (paper Eq. 5 and its usual alternatives).

Counts per neuron, as tensors of one shape: ``n_ac``/``n_nc`` activated / not activated on
correctly classified examples, ``n_am``/``n_nm`` on misclassified ones. Every ratio with a zero
denominator is defined as 0.
"""

from __future__ import annotations

import torch

from .registry import Localizer, register_localizer

FORMULAS = ("tarantula", "ochiai", "dstar")


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    numerator, denominator = numerator.double(), denominator.double()
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-300), torch.zeros_like(numerator))


def tarantula(n_ac: torch.Tensor, n_nc: torch.Tensor, n_am: torch.Tensor, n_nm: torch.Tensor) -> torch.Tensor:
    """``r_m / (r_m + r_c)`` with ``r_m = n_am / (n_am + n_nm)`` and ``r_c = n_ac / (n_ac + n_nc)`` (Eq. 5)."""
    r_m = _ratio(n_am, n_am + n_nm)
    r_c = _ratio(n_ac, n_ac + n_nc)
    return _ratio(r_m, r_m + r_c)


def ochiai(n_ac: torch.Tensor, n_nc: torch.Tensor, n_am: torch.Tensor, n_nm: torch.Tensor) -> torch.Tensor:
    """``n_am / sqrt((n_am + n_nm) * (n_am + n_ac))``."""
    return _ratio(n_am, torch.sqrt((n_am + n_nm).double() * (n_am + n_ac).double()))


def dstar(n_ac: torch.Tensor, n_nc: torch.Tensor, n_am: torch.Tensor, n_nm: torch.Tensor, star: int = 2) -> torch.Tensor:
    """``n_am^star / (n_ac + n_nm)`` (DStar with the usual ``star = 2``); unbounded above."""
    return _ratio(n_am.double() ** star, n_ac + n_nm)


def suspiciousness(formula: str, n_ac, n_nc, n_am, n_nm) -> torch.Tensor:
    """Apply the named formula (one of :data:`FORMULAS`); float64 scores of the counts' shape."""
    functions = {"tarantula": tarantula, "ochiai": ochiai, "dstar": dstar}
    if formula not in functions:
        raise ValueError(f"unknown suspiciousness formula {formula!r}; choose one of {', '.join(FORMULAS)}")
    return functions[formula](n_ac, n_nc, n_am, n_nm)


def reweight(scores: torch.Tensor, gradients: torch.Tensor, block_of: torch.Tensor) -> torch.Tensor:
    """Adversarial-aware reweighting (Eq. 6): ``|g_j - G| / max_k |g_k - G| * s_j``.

    Args:
        scores: ``s_j`` per neuron, ``(J,)``.
        gradients: ``g_j``, the mean gradient magnitude of neuron ``j`` over the failures, ``(J,)``.
        block_of: the block index of each neuron, ``(J,)`` int64 in ``0..B-1``; ``G_i`` is the
            mean of ``g_j`` over block ``i``'s neurons and ``G`` the mean of the ``G_i``.
    """
    gradients = gradients.double()
    count = int(block_of.max()) + 1
    sums = torch.zeros(count, dtype=torch.float64).index_add_(0, block_of, gradients)
    sizes = torch.bincount(block_of, minlength=count).double()
    block_means = sums[sizes > 0] / sizes[sizes > 0]
    deviation = (gradients - block_means.mean()).abs()
    return _ratio(deviation, deviation.max().expand_as(deviation)) * scores.double()


@register_localizer
class SpectrumLocalizer(Localizer):
    """The paper's Algorithm 1: the block with the most vulnerable neurons (reweighted score above
    ``epsilon_level``, or above ``config.absolute``), ties broken by the mean reweighted score."""

    name = "spectrum"
    uses_level = True

    def choose(self, report, config) -> tuple[str, str]:
        key = "abs" if config.absolute is not None else f"top{config.level}"
        return report.ranking_reweighted[0], f"most vulnerable neurons at {key} (ties: mean reweighted score)"
