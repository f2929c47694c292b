"""Rows made before the store existed (the held-out bench's JSON-lines rows,
``benchmarks/results/heldout_rows.jsonl``) imported as ``imported`` rows: their figures, the
settings they recorded, and no code version or environment.

A study file names such rows with ``[[imports]]`` tables (``rows``: the file, relative to the study
file; ``models``: the rows' model names renamed to the study's, e.g. ``{ undertrained =
"resnet18-undertrained" }``); ``archrepair study import STORE --rows FILE`` imports a file by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

from .._comparison.record import judged_fields
from ..errors import ArchRepairError
from .spec import Run
from .store import Store, read_export


def import_rows(store_path: str | Path, rows_path: str | Path, models: dict[str, str] | None = None) -> dict:
    """Import every row of the JSON-lines file ``rows_path`` into the store (created when missing);
    a row imported before (same hash) is not imported again."""
    store = Store(store_path)
    try:
        return {"store": str(store_path)} | import_into(store, rows_path, models)
    finally:
        store.close()


def import_into(store: Store, rows_path: str | Path, models: dict[str, str] | None = None) -> dict:
    """:func:`import_rows` into an open ``store``; ``models`` renames the rows' models. The scenario
    is ``test``, or ``<corruption>-<severity>``. A store's export (:meth:`Store.export_lines`) is
    restored as it was (:meth:`Store.restore`). Returns the rows read and the rows added."""
    rows_path = Path(rows_path)
    if not rows_path.is_file():
        raise ArchRepairError(f"rows file {str(rows_path)!r} does not exist")
    try:
        rows = [json.loads(line) for line in rows_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArchRepairError(f"{str(rows_path)!r} is not a JSON-lines file of rows: {error}") from None
    if rows and {"hash", "config", "status"} <= set(rows[0]):  # a store's own export
        return {"rows": len(rows), "imported": store.restore(read_export(rows_path))}
    models = models or {}
    runs, figures = [], []
    for row in rows:
        if not {"model", "method", "seed", "judged"} <= set(row):
            raise ArchRepairError(f"{str(rows_path)!r} holds a row without model, method, seed and judged figures")
        settings = row.get("settings") or {}
        scenario = f"{settings['corruption']}-{settings.get('severity')}" if settings.get("corruption") else "test"
        model = models.get(row["model"], row["model"])
        config = {"imported_from": rows_path.name, "model": model, "scenario": scenario,
                  "method": row["method"], "seed": row["seed"], "settings": settings, "variant": row.get("variant"),
                  "configuration": row.get("configuration"), "commit": row.get("commit")}
        runs.append(Run(model, scenario, row["method"], int(row["seed"]), config))
        figures.append(judged_fields(row["judged"] or {}) | {
            "method": row["method"], "seed": row["seed"], "kept": row.get("kept"), "keep": row.get("keep"),
            "block": row.get("block"), "genotype": row.get("genotype"), "shift_table": row.get("shift_table")})
    added = store.add(runs, list(zip(figures, [row.get("seconds") for row in rows])))
    return {"rows": len(rows), "imported": added}
