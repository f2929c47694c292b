"""A study file checked as a whole before anything runs: every key known, every value of the type and
range it takes, no empty list, every name a grid uses defined. The first problem found is one
:class:`~archrepair.errors.ArchRepairError` line naming the key, the value given and what it takes.

The shape (see :mod:`.spec` for what each key means)::

    name, store, export: text       seeds: non-empty list of whole numbers >= 0
    budget: { seconds > 0, epochs >= 1 }   count >= 1   train_examples >= 0 (0: all)   threads >= 1
    device: auto | cpu | cuda[:N]   protocol: heldout | paper   holdout in (0, 1)   keep_level in (0, 1]
    [models.NAME] checkpoint (text), data (text)
    [scenarios.NAME] corruption (a corruption's name), severity 1-5; or field (text)
    [methods.NAME] method (text), task, settings (tables)
    [[grid]] models, scenarios, methods (non-empty lists of defined names); seeds, budget, count
    [[imports]] rows (text), models (a table of text)
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ArchRepairError

Check = Callable[[str, object], None]


class StudyFileError(ArchRepairError):
    """A study file that cannot run as written."""


def validate_study(raw: dict, where: str) -> None:
    """Raise :class:`StudyFileError` for the first problem of the parsed study file ``raw``
    (``where``: how to name the file in the message)."""
    checker = _Checker(where)
    checker.table("the file", raw, TOP, required=("grid",))
    models, scenarios = raw.get("models", {}), raw.get("scenarios", {})
    methods = set(raw.get("methods", {}))
    for name, variant in raw.get("methods", {}).items():
        if not _registered(variant.get("method", name)):
            checker.fail(f"methods.{name}.method", variant.get("method", name), "a registered method's name")
    for number, grid in enumerate(raw["grid"], 1):
        for key, defined in (("models", models), ("scenarios", scenarios)):
            for name in grid[key]:
                if name not in defined:
                    checker.fail(f"grid {number}: {key}", name, f"a name defined in [{key}] ({', '.join(sorted(defined)) or 'none'})")
        for name in grid["methods"]:
            if name not in methods and not _registered(name):
                checker.fail(f"grid {number}: methods", name, "a registered method or a name defined in [methods]")


def _registered(name: str) -> bool:
    from .._repair import list_repairers

    return name in list_repairers()


class _Checker:
    """Checks the tables of one study file (``where`` names it in every message)."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, value, takes: str) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise StudyFileError(f"study file {self.where}: {key} = {shown}: it takes {takes}")

    def table(self, key: str, value, keys: dict[str, Check], required: tuple[str, ...] = ()) -> None:
        if not isinstance(value, dict):
            self.fail(key, value, "a table")
        unknown = sorted(set(value) - set(keys))
        if unknown:
            self.fail(f"{key}: key {unknown[0]!r}" if key != "the file" else f"key {unknown[0]!r}", value[unknown[0]],
                      f"one of the known keys ({', '.join(sorted(keys))})")
        for name in required:
            if name not in value:
                raise StudyFileError(f"study file {self.where}: {key} has no {name}: "
                                     + ("add a [[grid]] table: nothing to run" if name == "grid" else f"give {name}"))
        for name, item in value.items():
            keys[name](self, name if key == "the file" else f"{key}.{name}", item)


def _text(checker: _Checker, key: str, value) -> None:
    if not isinstance(value, str) or not value.strip():
        checker.fail(key, value, "a non-empty text")


def _whole(low: int, high: int | None = None) -> Check:
    def check(checker: _Checker, key: str, value) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            checker.fail(key, value, f"a whole number >= {low}" if high is None else f"a whole number from {low} to {high}")
    return check


def _number(low: float, high: float | None = None, low_open: bool = True, high_open: bool = False) -> Check:
    def check(checker: _Checker, key: str, value) -> None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        ok = ok and (value > low if low_open else value >= low)
        ok = ok and (high is None or (value < high if high_open else value <= high))
        if not ok:
            bounds = f"{'(' if low_open else '['}{low:g}, {'∞)' if high is None else f'{high:g}' + (')' if high_open else ']')}"
            checker.fail(key, value, f"a number in {bounds}")
    return check


def _choice(*options: str, prefix: str | None = None) -> Check:
    def check(checker: _Checker, key: str, value) -> None:
        if not isinstance(value, str) or not (value in options or (prefix and value.startswith(prefix))):
            checker.fail(key, value, "one of " + ", ".join(options) + (f" or {prefix}N" if prefix else ""))
    return check


def _list_of(item: Check, non_empty: bool = True) -> Check:
    def check(checker: _Checker, key: str, value) -> None:
        if not isinstance(value, list) or (non_empty and not value):
            checker.fail(key, value, "a non-empty list" if non_empty else "a list")
        for index, element in enumerate(value):
            item(checker, f"{key}[{index}]", element)
    return check


def _table_of(keys: dict[str, Check], required: tuple[str, ...] = ()) -> Check:
    def check(checker: _Checker, key: str, value) -> None:
        checker.table(key, value, keys, required)
    return check


def _any_table(checker: _Checker, key: str, value) -> None:
    if not isinstance(value, dict):
        checker.fail(key, value, "a table")


def _named_tables(keys: dict[str, Check], required: tuple[str, ...] = ()) -> Check:
    def check(checker: _Checker, key: str, value) -> None:
        if not isinstance(value, dict):
            checker.fail(key, value, "a table of named tables")
        for name, table in value.items():
            checker.table(f"{key}.{name}", table, keys, required)
    return check


def _corruption(checker: _Checker, key: str, value) -> None:
    from ..data.corruptions import NAMES

    if value not in NAMES:
        checker.fail(key, value, f"a corruption's name ({', '.join(NAMES)})")


def _named_text(checker: _Checker, key: str, value) -> None:
    if not isinstance(value, dict):
        checker.fail(key, value, "a table of names (old name = study name)")
    for name, renamed in value.items():
        _text(checker, f"{key}.{name}", renamed)


def _scenarios(checker: _Checker, key: str, value) -> None:
    if not isinstance(value, dict):
        checker.fail(key, value, "a table of named tables")
    for name, table in value.items():
        _scenario(checker, f"{key}.{name}", table)


def _scenario(checker: _Checker, key: str, value) -> None:
    checker.table(key, value, SCENARIO)
    if "field" in value and ({"corruption", "severity"} & set(value)):
        checker.fail(key, value, "a corruption (and severity) or a field set, not both")
    if "severity" in value and "corruption" not in value:
        checker.fail(f"{key}.severity", value["severity"], "a corruption beside it")


BUDGET = {"seconds": _number(0.0), "epochs": _whole(1)}
SEEDS = _list_of(_whole(0))
SCENARIO = {"corruption": _corruption, "severity": _whole(1, 5), "field": _text}
GRID = {"models": _list_of(_text), "scenarios": _list_of(_text), "methods": _list_of(_text), "seeds": SEEDS,
        "budget": _table_of(BUDGET), "count": _whole(1)}
TOP: dict[str, Check] = {
    "name": _text, "store": _text, "export": _text, "seeds": SEEDS, "budget": _table_of(BUDGET),
    "count": _whole(1), "train_examples": _whole(0), "threads": _whole(1),
    "device": _choice("auto", "cpu", "cuda", prefix="cuda:"), "protocol": _choice("heldout", "paper"),
    "holdout": _number(0.0, 1.0, high_open=True), "keep_level": _number(0.0, 1.0),
    "models": _named_tables({"checkpoint": _text, "data": _text}, required=("checkpoint",)),
    "scenarios": _scenarios,
    "methods": _named_tables({"method": _text, "task": _any_table, "settings": _any_table}),
    "grid": _list_of(_table_of(GRID, required=("models", "scenarios", "methods"))),
    "imports": _list_of(_table_of({"rows": _text, "models": _named_text}, required=("rows",)), non_empty=False),
}
