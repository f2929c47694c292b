"""The subcommands of ``archrepair``: each module defines one :class:`Command`."""

from __future__ import annotations

from . import data_info, evaluate, failures, inspect, localize, train
from .base import Command

COMMANDS: list[Command] = [
    train.COMMAND,
    evaluate.COMMAND,
    failures.COMMAND,
    localize.COMMAND,
    inspect.MODELS,
    inspect.BLOCKS,
    data_info.COMMAND,
]

__all__ = ["COMMANDS", "Command"]
