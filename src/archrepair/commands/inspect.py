"""``archrepair models`` and ``archrepair blocks``: what the zoo holds and how a model splits into blocks."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from ..checkpoint import load_checkpoint
from ..errors import ArchRepairError
from ..models import (
    block_shapes,
    default_blocks,
    get_model,
    list_models,
    resolve_blocks,
)
from .base import Command, console


def run_models(args: argparse.Namespace) -> dict:
    rows = []
    for name in list_models():
        model = get_model(name, width=args.width)
        rows.append({"name": name, "blocks": len(default_blocks(model)),
                     "parameters": sum(p.numel() for p in model.parameters()), "width": args.width})
    return {"models": rows}


def show_models(result: dict) -> None:
    table = Table(title="model zoo (10 classes, 3 channels)")
    for column in ("model", "blocks", "parameters"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in result["models"]:
        table.add_row(row["name"], str(row["blocks"]), f"{row['parameters']:,} (width {row['width']})")
    console.print(table)


def add_models_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier for the parameter counts")


def add_blocks_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="a checkpoint folder, a zoo model name, or tv:NAME for a torchvision classifier")
    parser.add_argument("--blocks", help="comma-separated block names to check instead of the automatic ones")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier (zoo models)")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--input-size", type=int, default=32, help="image size for the shapes (default: 32)")
    parser.add_argument("--in-channels", type=int, default=3)


def run_blocks(args: argparse.Namespace) -> dict:
    input_shape = (args.in_channels, args.input_size, args.input_size)
    if Path(args.target).is_dir():
        model, record = load_checkpoint(args.target)
        height, width, channels = record.input_shape
        input_shape = (channels, height, width)
    elif args.target.startswith("tv:"):
        model = _torchvision_model(args.target[3:], args.num_classes)
    else:
        model = get_model(args.target, num_classes=args.num_classes, in_channels=args.in_channels, width=args.width)
    names = resolve_blocks(model, args.blocks.split(",") if args.blocks else None)
    shapes = block_shapes(model, names, input_shape)
    return {"target": args.target, "input_shape": list(input_shape),
            "blocks": [{"name": name, **shapes[name]} for name in names]}


def show_blocks(result: dict) -> None:
    table = Table(title=f"blocks of {result['target']} (input {tuple(result['input_shape'])})")
    for column in ("#", "block", "input", "output", "parameters"):
        table.add_column(column, justify="right" if column in ("#", "parameters") else "left")
    for index, block in enumerate(result["blocks"], start=1):
        table.add_row(str(index), block["name"], str(tuple(block.get("input", ()))),
                      str(tuple(block.get("output", ()))), f"{block['parameters']:,}")
    console.print(table)


def _torchvision_model(name: str, num_classes: int):
    from torchvision import models

    try:
        return models.get_model(name, weights=None, num_classes=num_classes)
    except ValueError:
        raise ArchRepairError(f"unknown torchvision model {name!r}; see torchvision.models.list_models()") from None


MODELS = Command(add_models_arguments, run_models, show_models)
BLOCKS = Command(add_blocks_arguments, run_blocks, show_blocks)
