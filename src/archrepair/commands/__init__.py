"""The subcommands of ``archrepair``: :data:`INDEX` names each and says in one line what it does;
its module (imported only when the command runs or shows its help, so that ``archrepair --help``
starts without torch) defines its :class:`~.base.Command`."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """A subcommand: ``name``, one-line ``help``, and where its :class:`~.base.Command` is
    (``module`` of this package, ``attribute``)."""

    name: str
    help: str
    module: str
    attribute: str = "COMMAND"

    def load(self):
        """The :class:`~.base.Command` (imports its module)."""
        return getattr(importlib.import_module(f".{self.module}", __name__), self.attribute)


INDEX: list[Entry] = [
    Entry("demo", "the whole job on the embedded digits: train, fail, localise, repair, report", "demo"),
    Entry("train", "train a zoo model on a data set and write a checkpoint folder", "train"),
    Entry("import", "make a checkpoint from your own model (torchvision, timm, or your factory) and weights",
          "import_model"),
    Entry("evaluate", "accuracy of a checkpoint, overall, per class and under corruptions", "evaluate"),
    Entry("failures", "select D_fail (misclassified test examples) and save the failure split", "failures"),
    Entry("localize", "find the block most to blame for the failures (spectrum + gradient reweighting)", "localize"),
    Entry("repair", "repair the block most to blame for the failures (default method: auto; the paper's search: "
          "--method archrepair)", "repair"),
    Entry("compare", "run repair methods side by side over seeds with one budget; tables, p-values, chart", "compare"),
    Entry("study", "a grid of repair runs (models x scenarios x methods x seeds) from a TOML file into an SQLite store; "
          "its status; its report", "study"),
    Entry("corrupt", "write a corrupted copy of a test split (the 15 CIFAR-10-C corruptions)", "corrupt"),
    Entry("models", "list the model zoo", "inspect", "MODELS"),
    Entry("blocks", "list a model's blocks with their shapes and sizes", "inspect", "BLOCKS"),
    Entry("data", "load a data set (decoding and caching it once) and describe it", "data_info"),
]

__all__ = ["INDEX", "Entry"]
