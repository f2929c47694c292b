"""Deprecated path (kept for one release): the gradient levels live in :mod:`archrepair.repair.methods.gradient`."""

from .methods.gradient import LEVELS, GradientConfig, GradientRepair, failure_gradients  # noqa: F401
