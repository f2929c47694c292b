"""A study file: the grid of repair runs (models x scenarios x methods x seeds) and its settings.

A study is a TOML file (paths in it are relative to the file)::

    name = "example"
    seeds = [0, 1, 2, 3]
    budget = { seconds = 120 }            # or { epochs = 2 }, or both
    count = 750                           # failures asked for (D_fail)
    train_examples = 5000                 # training examples in D_repair (0: all)
    threads = 2                           # torch threads per run

    [models.undertrained]
    checkpoint = "../../shared/models/resnet18-w0.25-deployed80"

    [scenarios.test]                      # the test set's failures
    [scenarios.gaussian]                  # a corruption of the test set
    corruption = "gaussian_noise"
    severity = 3

    [methods.block-gradient-w0.5]         # a named variant: a registered method and its overrides
    method = "block-gradient"
    task = { fail_weight = 0.5 }          # TaskConfig fields
    settings = { localize_rows = 2000 }   # RepairSettings fields (nested: { train = { lr = 0.01 } })

    [[grid]]                              # one or more: every combination of its lists is a run
    models = ["undertrained"]
    scenarios = ["test", "gaussian"]
    methods = ["auto", "archrepair", "block-gradient-w0.5"]
    # seeds, budget and count may be given per grid too (they replace the file's for its runs)

    export = "example/runs.jsonl"         # finished rows as text, to commit (the store is not)

    [[imports]]                           # rows made before the store (study/imported.py)
    rows = "../benchmarks/results/heldout_rows.jsonl"
    models = { undertrained = "resnet18-undertrained" }   # old name = study name

Each run resolves to a plain dictionary (:func:`resolve_runs`) whose hash names it in the store: it
covers every resolved setting, the method's version (:func:`method_version`), the keep rule, the
model's weights fingerprint, and the threads and worker count the run has (not the checkpoint's
path on this machine).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, fields, is_dataclass, replace
from pathlib import Path

from ..errors import ArchRepairError
from .validate import validate_study


@dataclass(frozen=True)
class Run:
    """One cell of the grid: its ``label`` parts and its resolved ``config`` (see :func:`resolve_runs`)."""

    model: str
    scenario: str
    method: str
    seed: int
    config: dict

    @property
    def hash(self) -> str:
        return config_hash(self.config)


@dataclass
class Study:
    """A parsed study file (``path``) with its tables as given; :meth:`runs` resolves the grid."""

    path: Path
    raw: dict

    @property
    def name(self) -> str:
        return str(self.raw.get("name", self.path.stem))

    @property
    def export(self) -> Path | None:
        """The text export of the store's finished rows (``export``, relative to the file), rewritten
        after each finished run and read back into a new store (:func:`~archrepair.study.store.read_export`)."""
        return (self.path.parent / self.raw["export"]).resolve() if "export" in self.raw else None

    @property
    def imports(self) -> list[tuple[Path, dict[str, str]]]:
        """``(rows file, model renames)`` of each ``[[imports]]`` table, paths relative to the file."""
        return [((self.path.parent / entry["rows"]).resolve(), dict(entry.get("models", {})))
                for entry in self.raw.get("imports", [])]

    @property
    def store(self) -> Path:
        """The SQLite store: ``store`` of the file (relative to it), else ``<file stem>.sqlite`` beside it."""
        return (self.path.parent / self.raw.get("store", f"{self.path.stem}.sqlite")).resolve()

    def runs(self, workers: int = 1) -> list[Run]:
        return resolve_runs(self, workers)


def load_study(path: str | Path) -> Study:
    """The study in TOML file ``path``, checked as a whole (:func:`~.validate.validate_study`): any
    problem is a one-line error before anything runs."""
    path = Path(path)
    if not path.is_file():
        raise ArchRepairError(f"study file {str(path)!r} does not exist; give a .toml study file (see studies/)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ArchRepairError(f"study file {str(path)!r} is not valid TOML: {error}") from None
    validate_study(raw, repr(str(path)))
    return Study(path.resolve(), raw)


def resolve_runs(study: Study, workers: int = 1) -> list[Run]:
    """Every run of ``study``'s grids in file order (grid, model, scenario, method, seed), each with
    its resolved configuration; a run named twice is kept once."""
    from .._repair import RepairSettings, TaskConfig
    from ..budget import Budget
    from ..checkpoint import model_fingerprint
    from ..device import resolve_device

    raw, base = study.raw, study.path.parent
    models, scenarios = raw.get("models") or {}, raw.get("scenarios") or {}
    fingerprints: dict[str, str] = {}
    runs: dict[str, Run] = {}
    device = raw.get("device", "auto")
    if device == "auto":  # as everywhere: the GPU when there is one (here, where the study is resolved)
        device = str(resolve_device(device))
    for grid in raw["grid"]:  # checked whole by load_study
        budget = Budget(**grid.get("budget", raw.get("budget", {})))
        count = int(grid.get("count", raw.get("count", 1000)))
        seeds = grid.get("seeds", raw.get("seeds", [0]))
        for model in grid["models"]:
            checkpoint = str((base / models[model]["checkpoint"]).resolve())
            if checkpoint not in fingerprints:
                fingerprints[checkpoint] = model_fingerprint(checkpoint)
            for scenario in grid["scenarios"]:
                shift, field_spec = _scenario(scenarios[scenario], base)
                for label in grid["methods"]:
                    method, overrides = _method(study, label)
                    settings = overrides_applied(RepairSettings(), overrides.get("settings", {}), f"{label}.settings")
                    for seed in seeds:
                        task = overrides_applied(TaskConfig(
                            train_examples=raw.get("train_examples", 5000), seed=int(seed), corruption=shift,
                            device=device, keep_level=raw.get("keep_level", 0.05)),
                            overrides.get("task", {}), f"{label}.task")
                        if task.train_examples == 0:  # as on the command line: all of them
                            task = replace(task, train_examples=None)
                        config = {
                            "model": model, "checkpoint": checkpoint, "model_fingerprint": fingerprints[checkpoint],
                            "data": models[model].get("data"), "scenario": scenario, "field": field_spec,
                            **({"field_fingerprint": field_fingerprint(field_spec)} if field_spec else {}),
                            "method": label, "repairer": method, "method_version": method_version(method),
                            "overrides": overrides, "settings": _plain(settings), "task": _plain(task),
                            "budget": _plain(budget), "seed": int(seed), "count": count,
                            "protocol": raw.get("protocol", "heldout"), "holdout": float(raw.get("holdout", 0.5)),
                            "threads": int(raw.get("threads", 1)), "workers": int(workers),
                        }
                        run = Run(model, scenario, label, int(seed), config)
                        runs.setdefault(run.hash, run)
    return list(runs.values())


def config_hash(config: dict) -> str:
    """sha256 (first 16 hex digits) of ``config`` as sorted JSON, without where the checkpoint and a
    field set lie on this machine (their contents' fingerprints name them), so that a study's rows
    keep their hashes on any machine."""
    named = {key: value for key, value in config.items()
             if key != "checkpoint" and not (key == "field" and "field_fingerprint" in config)}
    return hashlib.sha256(json.dumps(named, sort_keys=True).encode()).hexdigest()[:16]


def field_fingerprint(path: str) -> str:
    """sha256 (first 16 hex digits) of a field set's contents: the file's bytes, or a folder's files
    (their paths relative to it and their bytes, in sorted order), wherever it lies."""
    root = Path(path)
    if not root.exists():
        raise ArchRepairError(f"field set {path!r} does not exist; give a folder, .tar.gz, .npz or .csv path "
                              "relative to the study file")
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]:
        if root.is_dir():
            digest.update(str(file.relative_to(root)).encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def method_version(name: str) -> int:
    """The registered method's version (bumped when its behaviour changes)."""
    from .._repair.registry import method_entry

    return method_entry(name).version


def overrides_applied(value, overrides: dict, where: str):
    """``value`` (a dataclass) with ``overrides`` applied, nested dataclass fields by nested tables;
    an unknown field is a one-line error naming ``where``."""
    names = {f.name: f for f in fields(value)}
    changes = {}
    for key, given in overrides.items():
        if key not in names:
            raise ArchRepairError(f"{where}: unknown setting {key!r}; known: {sorted(names)}")
        current = getattr(value, key)
        changes[key] = (overrides_applied(current, given, f"{where}.{key}")
                        if is_dataclass(current) and isinstance(given, dict) else given)
    try:
        return replace(value, **changes)
    except (TypeError, ValueError) as error:
        raise ArchRepairError(f"{where}: {changes} cannot be applied ({error})") from None


def rebuilt(config: dict):
    """``(settings, task, budget)`` of a resolved run configuration."""
    from .._repair import RepairSettings, TaskConfig
    from ..budget import Budget

    overrides = config["overrides"]
    settings = overrides_applied(RepairSettings(), overrides.get("settings", {}), "settings")
    return settings, TaskConfig(**config["task"]), Budget(**config["budget"])


def _method(study: Study, label: str) -> tuple[str, dict]:
    """``(registered name, overrides)`` of a grid's method label (checked by :func:`validate_study`):
    a variant of the file's ``[methods]`` table, else a registered method without overrides."""
    variant = (study.raw.get("methods") or {}).get(label)
    if variant is None:
        return label, {}
    return variant.get("method", label), {key: variant[key] for key in ("task", "settings") if key in variant}


def _scenario(scenario: dict, base: Path) -> tuple[dict | None, str | None]:
    """``(shift, field spec)`` of a scenario table: a corruption ``{"name", "severity", "seed"}``,
    or a field set's path (relative to the study file), or neither (the test set's failures)."""
    shift = ({"name": scenario["corruption"], "severity": int(scenario.get("severity", 3)), "seed": 0}
             if "corruption" in scenario else None)
    field_spec = str((base / scenario["field"]).resolve()) if "field" in scenario else None
    return shift, field_spec


def _plain(value) -> dict:
    from ..fileio import json_ready

    return json_ready(asdict(value))
