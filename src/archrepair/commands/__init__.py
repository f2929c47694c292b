"""The subcommands of ``archrepair``: each module defines one :class:`Command`."""

from __future__ import annotations

from . import (
    compare,
    corrupt,
    data_info,
    demo,
    evaluate,
    failures,
    import_model,
    inspect,
    localize,
    repair,
    train,
)
from .base import Command

COMMANDS: list[Command] = [
    demo.COMMAND,
    train.COMMAND,
    import_model.COMMAND,
    evaluate.COMMAND,
    failures.COMMAND,
    localize.COMMAND,
    repair.COMMAND,
    compare.COMMAND,
    corrupt.COMMAND,
    inspect.MODELS,
    inspect.BLOCKS,
    data_info.COMMAND,
]

__all__ = ["COMMANDS", "Command"]
