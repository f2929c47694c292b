"""Which stored rows a report pools: rows of one (model, scenario, method) that ran under different
settings (an older method version, another budget, the old keep rule, an imported row's other
configuration) are different *variants*, reported apart.

The newest variant keeps the method's name: the one of the highest method version (pending rows count,
so that a version the study has not run yet is already the newest), then one with rows run in the store
(``done``) over rows imported from before it, then the one stored last. Each other
variant is named by the settings in which it differs, e.g. ``archrepair [budget_seconds 60, keep_level none]``.
"""

from __future__ import annotations

import json

from .store import StoredRun

# what does not make a run another experiment: where and how often it ran, which of its seeds
NOT_A_VARIANT = {"seed", "workers", "checkpoint", "commit", "imported_from", "method", "model", "scenario"}
SHOWN_DIFFERENCES = 3


def variant_labels(runs: list[StoredRun]) -> dict[str, str]:
    """``{row hash: label}`` for ``runs`` (stored rows in grid order): the method's name, or for an
    older variant the name and the settings it differs in."""
    cells: dict[tuple[str, str, str], dict[str, list[StoredRun]]] = {}
    for run in runs:
        key = json.dumps(_flat(_without_moved_paths(run.config)), sort_keys=True)
        cells.setdefault((run.model, run.scenario, run.method), {}).setdefault(key, []).append(run)
    labels = {}
    for (_, _, method), variants in cells.items():
        newest = max(variants, key=lambda key: _recency(variants[key]))
        flats = {key: json.loads(key) for key in variants}
        differing = sorted({name for flat in flats.values() for name in flat
                            if len({json.dumps(other.get(name)) for other in flats.values()}) > 1})
        for key, members in variants.items():
            label = method if key == newest else f"{method} [{_differences(flats[key], differing)}]"
            labels |= {run.hash: label for run in members}
    return labels


def _without_moved_paths(config: dict) -> dict:
    """``config`` without a field set's path where its contents' fingerprint names it (the path says
    where the set lay on one machine, not what it is)."""
    return {key: value for key, value in config.items() if not (key == "field" and "field_fingerprint" in config)}


def _recency(runs: list[StoredRun]) -> tuple[int, bool, int]:
    """What makes a variant the newest (see the module docstring)."""
    return (max(int(run.config.get("method_version", 0)) for run in runs), any(run.status == "done" for run in runs),
            max(run.position for run in runs))


def _differences(flat: dict, names: list[str]) -> str:
    shown = [f"{name.rsplit('.', 1)[-1]} {_value(flat.get(name))}" for name in names[:SHOWN_DIFFERENCES]]
    more = len(names) - SHOWN_DIFFERENCES
    return ", ".join(shown + ([f"{more} more"] if more > 0 else []))


def _value(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, str) and len(value) > 12:
        return value[:8]
    return str(value) if not isinstance(value, (dict, list)) else json.dumps(value, sort_keys=True)[:24]


def _flat(config: dict, prefix: str = "") -> dict:
    """``config`` as ``{"a.b.c": value}``, without what does not make another experiment."""
    flat = {}
    for key, value in config.items():
        if key in NOT_A_VARIANT:
            continue
        if isinstance(value, dict) and value:
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat
