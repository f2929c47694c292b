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

# Each public name and the module it lives in, imported when first used (PEP 562), so that
# `archrepair --help` and `import archrepair` do not pay for torch until something needs it.
_EXPORTS = {
    "._api": ["compare", "localize", "make_plan", "repair"],
    ".plan": ["RepairPlan"],
    ".problem": ["Problem", "load_problem"],
    "._comparison": ["Comparison", "summarise", "write_comparison"],
    "._localize": ["LocalizationReport", "LocalizeConfig", "Localizer", "list_localizers", "register_localizer"],
    "._repair": ["Candidate", "RepairResult", "Repairer", "RepairSettings", "TaskConfig", "get_repairer",
                 "list_repairers", "make_task", "register_repairer"],
    "._repair.report": ["RepairReport"],
    "._search.graph": ["register_relaxation_rule"],
    ".budget": ["Budget"],
    ".checkpoint": ["load", "load_checkpoint", "save_checkpoint"],
    ".data": ["load_data", "select_failures"],
    ".data.corruptions": ["corrupt", "list_corruptions", "register_corruption"],
    ".errors": ["ArchRepairError"],
    ".models": ["default_blocks", "get_model", "list_models", "register_model"],
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(["__version__", *_HOME])


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'archrepair' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_HOME[name], __name__), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return __all__
