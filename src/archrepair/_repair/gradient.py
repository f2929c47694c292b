"""Deprecated path (kept for one release): the gradient levels live in :mod:`archrepair._repair.methods.gradient`."""

from .methods.gradient import LEVELS, GradientConfig, GradientRepair, failure_gradients  # noqa: F401
