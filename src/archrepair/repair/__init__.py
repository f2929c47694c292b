"""Repair methods behind one interface, and the pipeline that runs, evaluates and saves a repair."""

from .archrepair import ArchRepair, ArchRepairConfig
from .base import RepairResult, Repairer
from .finetune import FineTune, FineTuneConfig
from .task import RepairTask, make_task

__all__ = [
    "ArchRepair", "ArchRepairConfig", "FineTune", "FineTuneConfig", "RepairResult", "RepairTask", "Repairer", "make_task",
]
