"""Repair methods behind one interface, and the pipeline that runs, evaluates and saves a repair."""

from .archrepair import ArchRepair, ArchRepairConfig
from .base import RepairResult, Repairer
from .finetune import FineTune, FineTuneConfig
from .gradient import LEVELS, GradientRepair
from .registry import get_repairer, list_repairers
from .task import RepairTask, make_task

__all__ = [
    "LEVELS", "ArchRepair", "ArchRepairConfig", "FineTune", "FineTuneConfig", "GradientRepair", "RepairResult",
    "RepairTask", "Repairer", "get_repairer", "list_repairers", "make_task",
]
