"""Standing rules of the code base: layers import only downwards, no block of eight or more lines
is repeated across the package, the README stays short (150 lines) with links that lead somewhere,
and the public API imports from the top."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest


PACKAGE = Path(__file__).resolve().parent.parent / "src" / "archrepair"
README = PACKAGE.parent.parent / "README.md"

# data and models -> train and evaluate (and a model staged from memory) -> localize and search -> repair (and
# a checkpoint's problem) -> a repair's plan, comparison -> commands
LAYERS = {
    "errors": 0, "fileio": 0, "_checks": 0, "_registry": 0, "budget": 0, "device": 0, "hooks": 0, "data": 0, "models": 0,
    "checkpoint": 0, "distributed": 0,
    "train": 1, "evaluate": 1, "base_model": 1, "in_memory": 1,
    "_localize": 2, "_search": 2,
    "_repair": 3, "problem": 3,
    "plan": 4, "_comparison": 4,
    "_api": 5, "study": 5, "commands": 5, "cli": 5, "__init__": 5, "__main__": 5,
}


def _top(module: Path) -> str:
    parts = module.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imports(path: Path) -> set[str]:
    """The top-level archrepair modules ``path`` imports, lazily or not."""
    depth = len(path.relative_to(PACKAGE).parts) - 1  # folders below the package
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.startswith("archrepair."):
                found.add(node.module.split(".")[1])
            elif node.level > depth:  # reaches the package root
                target = (node.module or "").split(".")[0]
                names = [target] if target else [alias.name for alias in node.names]
                found.update(names)
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("archrepair."))
    return found


def test_every_module_imports_only_from_its_layer_or_below():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        top = _top(path)
        if top == "__init__":
            continue
        assert top in LAYERS, f"{path} is in no layer; add it to LAYERS"
        for imported in _imports(path):
            if imported in LAYERS and LAYERS[imported] > LAYERS[top]:
                violations.append(f"{path.relative_to(PACKAGE)} imports {imported}")
    assert violations == []


def test_no_block_of_eight_lines_is_repeated_across_the_package():
    result = subprocess.run(
        [sys.executable, "-m", "pylint", "--disable=all", "--enable=duplicate-code", "--min-similarity-lines=8",
         "--ignore-imports=yes", "--ignore-docstrings=yes", "--ignore-comments=yes", str(PACKAGE)],
        capture_output=True, text=True,
    )
    assert "R0801" not in result.stdout, result.stdout


def test_the_readme_is_read_at_a_glance_and_its_links_lead_somewhere():
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    for target in re.findall(r"\]\(([^)#]+)\)", text):  # the README's own links (the guide, the results page, ...)
        assert (README.parent / target).exists(), target


def test_the_public_functions_keep_their_names_and_old_paths_are_gone():
    import importlib

    import archrepair

    assert callable(archrepair.repair) and callable(archrepair.localize)
    assert archrepair.repair.__module__ == "archrepair._api"
    for old in ("archrepair.repair.pipeline", "archrepair._repair.surgery", "archrepair._repair.finetune"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(old)


def test_the_public_api_repairs_localizes_and_compares(digits_checkpoint, tmp_path):
    import archrepair
    from archrepair.train import TrainConfig

    report = archrepair.localize(digits_checkpoint, count=10, train_examples=200,
                                 config=archrepair.LocalizeConfig(level=10))
    assert report.chosen in report.ranking_reweighted[:1]
    settings = archrepair.RepairSettings(block="block2", search=archrepair._search.SearchConfig(epochs=1, warmup_epochs=0),
                                         train=TrainConfig(epochs=1, batch_size=64, lr=0.01))
    task = archrepair.TaskConfig(train_examples=200, device="cpu")
    result, summary = archrepair.repair(digits_checkpoint, method="block-gradient", out=tmp_path / "r", count=10,
                                        settings=settings, task=task)
    assert summary.method == "block-gradient" and summary.other["task"]["train_examples"] == 200
    assert (tmp_path / "r" / "report.json").exists() and archrepair.load(tmp_path / "r") is not None
    comparison = archrepair.compare(digits_checkpoint, ["block-gradient", "network-gradient"], seeds=1, count=10,
                                    settings=settings, task=task, budget=archrepair.Budget(epochs=1))
    assert [row.method for row in comparison.rows] == ["block-gradient", "network-gradient"]
