"""Deprecated path (kept for one release): ArchRepair lives in :mod:`archrepair._repair.methods.archrepair`."""

from .methods.archrepair import ArchRepair, ArchRepairConfig  # noqa: F401
