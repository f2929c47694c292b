"""archrepair: block-level, architecture-oriented repair of trained PyTorch image classifiers.

The public API is this module's: load a checkpoint, localise the block to blame for a set of
failures, repair it with a registered method, compare methods; the registries to extend. The
implementation packages (``_repair``, ``_localize``, ``_search``, ``_comparison``) are private.

Example:
    >>> import archrepair
    >>> report = archrepair.localize("runs/r18", "runs/fail.json")                        # doctest: +SKIP
    >>> result, summary = archrepair.repair("runs/r18", "runs/fail.json", out="runs/fixed")  # doctest: +SKIP
    >>> model = archrepair.load("runs/fixed")                                             # doctest: +SKIP
"""

__version__ = "0.1.0"

from ._api import Problem, compare, load_problem, localize, repair  # noqa: E402
from ._comparison import Comparison, summarise, write_comparison  # noqa: E402
from ._localize import LocalizationReport, LocalizeConfig, Localizer, list_localizers, register_localizer  # noqa: E402
from ._repair import (  # noqa: E402
    Candidate,
    RepairResult,
    Repairer,
    RepairSettings,
    TaskConfig,
    get_repairer,
    list_repairers,
    make_task,
    register_repairer,
)
from ._search.graph import register_relaxation_rule  # noqa: E402
from .budget import Budget  # noqa: E402
from .checkpoint import load, load_checkpoint, save_checkpoint  # noqa: E402
from .data import load_data, select_failures  # noqa: E402
from .data.corruptions import corrupt, list_corruptions, register_corruption  # noqa: E402
from .errors import ArchRepairError  # noqa: E402
from .models import default_blocks, get_model, list_models, register_model  # noqa: E402

__all__ = [
    "ArchRepairError", "Budget", "Candidate", "Comparison", "LocalizationReport", "LocalizeConfig", "Localizer",
    "Problem", "RepairResult", "RepairSettings", "Repairer", "TaskConfig", "__version__", "compare", "corrupt",
    "default_blocks", "get_model", "get_repairer", "list_corruptions", "list_localizers", "list_models",
    "list_repairers", "load", "load_checkpoint", "load_data", "load_problem", "localize", "make_task",
    "register_corruption", "register_localizer", "register_model", "register_relaxation_rule", "register_repairer",
    "repair", "save_checkpoint", "select_failures", "summarise", "write_comparison",
]
