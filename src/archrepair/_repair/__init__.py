"""Repair methods behind one interface (``base``), by name (``registry``; the methods are in
``methods/``, one module each), the task they share (``task``), and the pipeline that runs,
evaluates and saves a repair."""

from . import methods  # noqa: F401  (registers every method)
from .base import Candidate, RepairResult, Repairer, keep_better
from .methods.archrepair import ArchRepair, ArchRepairConfig
from .methods.gradient import LEVELS, GradientConfig, GradientRepair
from .registry import DEFAULT_METHOD, RepairSettings, describe_repairers, get_repairer, list_repairers, register_repairer
from .task import RepairTask, TaskConfig, make_task

__all__ = [
    "DEFAULT_METHOD", "LEVELS", "ArchRepair", "ArchRepairConfig", "Candidate", "GradientConfig",
    "GradientRepair", "RepairResult", "RepairSettings", "RepairTask", "Repairer", "TaskConfig", "describe_repairers",
    "get_repairer", "keep_better", "list_repairers", "make_task", "register_repairer",
]
