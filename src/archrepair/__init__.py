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

import sys as _sys  # noqa: E402
import types as _types  # noqa: E402

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

# Deprecated import paths, kept for one release: ``archrepair.repair.X`` is ``archrepair._repair.X``
# and so on. The functions ``archrepair.repair`` and ``archrepair.localize`` stay functions even
# after such an import (Python would otherwise bind the submodule over them).
_RENAMED = {"repair": "_repair", "localize": "_localize", "search": "_search", "comparison": "_comparison"}


class _Aliases:
    """Import hook: ``archrepair.<old>[.sub]`` is the module ``archrepair.<new>[.sub]``."""

    def find_spec(self, name, path=None, target=None):
        import importlib.util

        parts = name.split(".")
        if len(parts) >= 2 and parts[0] == __name__ and parts[1] in _RENAMED:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        import importlib

        parts = spec.name.split(".")
        parts[1] = _RENAMED[parts[1]]
        return importlib.import_module(".".join(parts))

    def exec_module(self, module):
        pass


class _Package(_types.ModuleType):
    def __setattr__(self, name, value):
        if name in _RENAMED and isinstance(value, _types.ModuleType):
            return  # the public function keeps the name
        super().__setattr__(name, value)


_sys.meta_path.insert(0, _Aliases())
_sys.modules[__name__].__class__ = _Package
