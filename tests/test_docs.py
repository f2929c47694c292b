"""The Markdown a reader follows leads somewhere: every repository path quoted in any Markdown file of
the repository (the README, the guide, the results page, the models' README, the study reports, the
committed comparison tables) exists (a command marked † exists at the
commit the results page names for removed scripts), every `python benchmarks/...` command names a
script here, and every `archrepair ...` command names a subcommand."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from archrepair.commands import INDEX

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ["README.md", *sorted(str(path.relative_to(ROOT)) for folder in ("docs", "benchmarks", "models", "studies")
                                  for path in (ROOT / folder).rglob("*.md") if "api" not in path.relative_to(ROOT).parts)]
REMOVED_AT = "7c1f664"
"""The commit where the removed evaluation scripts last were (the results page marks their commands †)."""
REMOVED = ("repair_heldout", "baselines_neuron", "baselines_data", "architecture_matters", "table1", "repair_corruption",
           "repair_cifar10", "search_study", "repair_default", "heldout_rows")
"""Those scripts, as the results page lists them: what a clone without that commit (a shallow one) checks against."""

TOP = ("benchmarks/", "studies/", "src/", "tests/", "models/", "docs/", "../shared/", "../studies/", "../models/",
       "../benchmarks/", "../src/")
GENERATED = (".sqlite", ".work")
"""Paths a command writes when it runs (a study's store, a repair's work folder; and any ``cache``
folder): never committed."""

SPAN = re.compile(r"`([^`]+)`(†?)")
PATH = re.compile(r"(?<![\w.-])((?:\.\./)*(?:benchmarks|studies|src|tests|models|docs|shared)/[\w./-]*\w)")


def _quoted(document: str) -> list[tuple[str, bool, int]]:
    """``(code span or link target, marked †, line)`` of every code span and link in ``document``."""
    found = []
    for number, line in enumerate((ROOT / document).read_text(encoding="utf-8").splitlines(), 1):
        found += [(match.group(1), bool(match.group(2)), number) for match in SPAN.finditer(line)]
        found += [(target, False, number) for target in re.findall(r"\]\(([^)#\s]+)\)", line)
                  if not target.startswith("http")]
    return found


def _exists(path: str, document: str, at: str | None) -> bool:
    """Whether ``path`` (from the repository root, or from ``document``'s folder) exists, at commit ``at``
    (in a clone without that commit: whether it is one of the removed scripts the results page lists)."""
    if at is not None and subprocess.run(["git", "cat-file", "-e", at], cwd=ROOT, capture_output=True).returncode:
        return Path(path).parent.name == "benchmarks" and Path(path).stem in REMOVED
    for base in (Path(document).parent, Path(".")):
        candidate = Path(*(base / path).parts)
        if at is None and (ROOT / candidate).exists():
            return True
        if at is not None:
            spelled = str(Path(*[part for part in candidate.parts if part != "."]))
            shown = subprocess.run(["git", "cat-file", "-e", f"{at}:{spelled}"], cwd=ROOT, capture_output=True)
            if shown.returncode == 0:
                return True
    return False


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_path_a_document_quotes_exists(document):
    missing = []
    for quoted, removed, line in _quoted(document):
        for path in PATH.findall(quoted):
            path = path.rstrip(".")
            if path.endswith(GENERATED) or "cache" in Path(path).parts or "<" in path:
                continue
            if not _exists(path, document, REMOVED_AT if removed else None):
                missing.append(f"{document}:{line}: {path}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_command_a_document_quotes_names_something_that_runs(document):
    commands = {entry.name for entry in INDEX}
    wrong = []
    for quoted, removed, line in _quoted(document):
        for script in re.findall(r"python (benchmarks/[\w/]+\.py)", quoted):
            if not _exists(script, ".", REMOVED_AT if removed else None):
                wrong.append(f"{document}:{line}: {script}")
        for command in re.findall(r"(?:^|\s|&&\s)archrepair ([a-z][a-z-]*)", quoted):
            if command not in commands:
                wrong.append(f"{document}:{line}: archrepair {command}")
    assert not wrong, "\n".join(wrong)


API_MODULES = ("archrepair", "archrepair.plan", "archrepair.in_memory", "archrepair.study")
"""What the README's API-reference command documents."""


def test_the_api_reference_builds_offline_without_a_warning(tmp_path):
    import warnings

    import pdoc

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"python -m pdoc -o docs/api {' '.join(API_MODULES)}" in readme
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pdoc.pdoc(*API_MODULES, output_directory=tmp_path)
    page = (tmp_path / "archrepair.html").read_text(encoding="utf-8")
    for name in ("repair", "make_plan", "RepairPlan", "RepairReport", "compare", "localize", "load"):
        assert f'id="{name}"' in page, name
    assert (tmp_path / "archrepair" / "plan.html").is_file() and (tmp_path / "archrepair" / "in_memory.html").is_file()


# Each headline row of the README: words that find its row, and for each figure it quotes, the committed
# result file that holds it (as that file writes it).
HEADLINES = [
    ("localising a block with damaged weights", {"12/12": ("benchmarks/results/localize_faults.txt",
                                                            '"resnet18_shift": 1.0'),
                                                  "3/12": ("benchmarks/results/localize_faults.txt",
                                                           '"resnet18_reweighted": 0.25')}),
    ("cached block inputs", {"0.70": ("benchmarks/results/repair_cifar10_cache_abba.txt",
                                      '"undertrained_cache_time_ratio": 0.7,'),
                             "0.66": ("benchmarks/results/step_floor.txt", "network steps' FLOPs: ratio 0.66")}),
    ("`auto` (default) against \"train more\"", {"+2.50": ("benchmarks/results/repair_default_undertrained.txt",
                                                           "+2.50 ± 0.42"),
                                                 "p 0.031": ("benchmarks/results/repair_default_undertrained.txt",
                                                             "0.031")}),
    ("ArchRepair against \"train more\" of its block", {"−1.18": ("benchmarks/results/repair_heldout.txt",
                                                                   "mean -1.18"),
                                                         "−1.49": ("benchmarks/results/repair_heldout.txt",
                                                                   "mean -1.49"),
                                                         "0/6": ("benchmarks/results/repair_heldout.txt",
                                                                 "better in 0/6")}),
    ("published baselines", {"Apricot +2.62": ("benchmarks/results/baselines_neuron.txt", "apricot | 4 | +2.62 ± 0.24"),
                             "DeepRepair +0.59": ("benchmarks/results/baselines_data.txt",
                                                  '"undertrained_deeprepair_candidate_change_points": 0.59'),
                             "AugMix +0.38": ("benchmarks/results/baselines_data.txt",
                                              '"undertrained_augmix_candidate_change_points": 0.38'),
                             "SENSEI −4.32": ("benchmarks/results/baselines_data.txt",
                                              '"undertrained_sensei_candidate_change_points": -4.32')}),
    ("Gaussian noise, severity 3", {"+1.13": ("benchmarks/results/repair_default_gaussian.txt", "+1.13"),
                                    "+1.59": ("benchmarks/results/repair_default_gaussian.txt", "+1.59")}),
]


@pytest.mark.parametrize("row, figures", HEADLINES, ids=[row for row, _ in HEADLINES])
def test_each_headline_figure_of_the_readme_is_in_a_committed_result_file(row, figures):
    lines = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    (found,) = [line for line in lines if row in line]
    for quoted, (path, written) in figures.items():
        assert quoted in found, (row, quoted)
        assert written in (ROOT / path).read_text(encoding="utf-8"), (path, written)


def test_the_results_page_opens_with_its_contents_each_leading_to_a_section_and_names_no_issue():
    text = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    anchors = re.findall(r"\]\(#([\w-]+)\)", contents)
    headings = {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
                for line in text.splitlines() if re.match(r"^#{2,3} ", line)}
    assert len(anchors) >= 10 and set(anchors) <= headings
    assert not re.search(r"#\d+\b", text.replace("](#", "]("))  # no issue number, in a heading or the text
