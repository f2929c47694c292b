"""Rows made before the store existed (the held-out bench's JSON-lines rows,
``benchmarks/results/heldout_rows.jsonl``) imported as ``imported`` rows: their figures, the
settings they recorded, and no code version or environment."""

from __future__ import annotations

import json
from pathlib import Path

from .._comparison.record import judged_fields
from ..errors import ArchRepairError
from .spec import Run
from .store import Store


def import_rows(store_path: str | Path, rows_path: str | Path) -> dict:
    """Import every row of the JSON-lines file ``rows_path`` into the store (created when missing);
    a row imported before (same hash) is not imported again. The scenario is ``test``, or
    ``<corruption>-<severity>``."""
    rows_path = Path(rows_path)
    if not rows_path.is_file():
        raise ArchRepairError(f"rows file {str(rows_path)!r} does not exist")
    try:
        rows = [json.loads(line) for line in rows_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArchRepairError(f"{str(rows_path)!r} is not a JSON-lines file of rows: {error}") from None
    runs, figures = [], []
    for row in rows:
        if not {"model", "method", "seed", "judged"} <= set(row):
            raise ArchRepairError(f"{str(rows_path)!r} holds a row without model, method, seed and judged figures")
        settings = row.get("settings") or {}
        scenario = f"{settings['corruption']}-{settings.get('severity')}" if settings.get("corruption") else "test"
        config = {"imported_from": rows_path.name, "model": row["model"], "scenario": scenario,
                  "method": row["method"], "seed": row["seed"], "settings": settings, "variant": row.get("variant"),
                  "configuration": row.get("configuration"), "commit": row.get("commit")}
        runs.append(Run(row["model"], scenario, row["method"], int(row["seed"]), config))
        figures.append(judged_fields(row["judged"] or {}) | {
            "method": row["method"], "seed": row["seed"], "kept": row.get("kept"), "keep": row.get("keep"),
            "block": row.get("block"), "genotype": row.get("genotype"), "shift_table": row.get("shift_table")})
    store = Store(store_path)
    try:
        added = store.add(runs, list(zip(figures, [row.get("seconds") for row in rows])))
    finally:
        store.close()
    return {"store": str(store_path), "rows": len(rows), "imported": added}
