"""``archrepair import``: make a checkpoint folder from a user's own model and weights, so that every
command works on it (bring your own model)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .._checks import add_dependent, name_list, output_lock, positive_int
from ..base_model import check_input_size, make_loader
from ..checkpoint import ModelRecord, check_weights_fit, read_state_dict, save_checkpoint
from ..data import load_data
from ..errors import ArchRepairError
from ..evaluate import predict_logits
from ..models import resolve_blocks
from ..models.external import EXTERNAL, build_external, first_convolution, fold_stem
from .base import Command, add_overwrite, checked_out, console, data_path, percent

def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--torchvision", metavar="NAME", help="a torchvision classification model by name (e.g. resnet18)")
    source.add_argument("--timm", metavar="NAME", help="a timm model by name (needs timm installed)")
    source.add_argument("--factory", metavar="SPEC",
                        help="your function that builds the model: path/to/file.py:function or package.module:function; "
                             "it is imported and called again whenever the checkpoint is loaded")
    parser.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                        help="keyword argument of the builder (VALUE read as JSON, else as text), e.g. num_classes=10; repeatable")
    parser.add_argument("--weights", required=True,
                        help="local weights file: .safetensors, or a state dict saved with torch.save (loaded weights-only)")
    parser.add_argument("--data", help="data spec the model works on: gives the input size, class names and (without "
                                       "--mean/--std) the normalisation, and measures the test accuracy")
    add_dependent(parser, "--input-size", type=positive_int, refused_with=("--data",),
                  help="image height = width in pixels (without --data)")
    add_dependent(parser, "--channels", type=positive_int, default=3, refused_with=("--data",),
                  help="image channels (without --data; default: 3)")
    parser.add_argument("--mean", type=_floats, help="per-channel mean in [0, 1] units, comma-separated")
    parser.add_argument("--std", type=_floats, help="per-channel standard deviation in [0, 1] units, comma-separated")
    add_dependent(parser, "--classes", type=name_list, refused_with=("--data",),
                  help="class names in label order (without --data)")
    parser.add_argument("--in-channels-from", type=positive_int, metavar="N",
                        help="the weights' first convolution takes N channels (3: a model made for RGB) and the data "
                             "has 1: fold it to one channel (its weights summed over the N; the same outputs as the "
                             "gray image repeated N times)")
    parser.add_argument("--blocks", type=name_list,
                        help="block names (module paths) for families without an automatic list, e.g. stage1,stage2")
    parser.add_argument("--out", required=True, help="checkpoint folder to write")
    add_overwrite(parser)

def _floats(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    return values

def _arguments(args: argparse.Namespace) -> dict:
    kwargs = {}
    for item in args.arg:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ArchRepairError(f"--arg {item!r} must be KEY=VALUE with KEY a Python name")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    if args.factory:
        module, _, function = args.factory.rpartition(":")
        spec = f"{Path(module).expanduser().resolve()}:{function}" if module.endswith(".py") else args.factory
        arguments = {"source": "factory", "factory": spec}
    else:
        arguments = {"source": "torchvision" if args.torchvision else "timm", "name": args.torchvision or args.timm}
    return arguments | {"kwargs": kwargs, "blocks": args.blocks or []}

def run(args: argparse.Namespace) -> dict:
    factory_file = args.factory.rpartition(":")[0] if args.factory and ".py:" in args.factory else None
    out = checked_out(args, args.weights, data_path(args.data), factory_file)
    with output_lock(out):
        return _import(args, out)

def _import(args: argparse.Namespace, out: Path) -> dict:
    arguments = _arguments(args)
    model = build_external(arguments).eval()
    state = read_state_dict(args.weights)
    check_weights_fit(model, state, f"--weights {args.weights!r}", "check the builder's arguments (--arg)")
    model.load_state_dict(state)
    data = load_data(args.data) if args.data else None
    if data is not None:
        height, width, channels = data.image_shape
        names = list(data.class_names)
        mean, std = data.channel_stats()
    else:
        if not args.input_size or not args.classes:
            raise ArchRepairError("without --data give --input-size and --classes (and --channels if not 3)")
        height = width = args.input_size
        channels, names, mean, std = args.channels, args.classes, None, None
    mean, std = args.mean or mean, args.std or std
    if mean is None or std is None:
        raise ArchRepairError("give --mean and --std (the normalisation the model was trained with), or --data")
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise ArchRepairError(f"--mean and --std need {channels} values each (standard deviations above 0)")
    if args.in_channels_from:
        _fold_stem(model, arguments, channels, args.in_channels_from)
    try:
        outputs = check_input_size(model, height, width, channels)
    except ArchRepairError:
        _refuse_channel_mismatch(model, channels)
        raise
    if outputs.dim() != 2 or outputs.shape[1] != len(names):
        raise ArchRepairError(f"the model outputs {tuple(outputs.shape[1:])} per image but there are {len(names)} classes; "
                              "check the builder's arguments (e.g. --arg num_classes=N)")
    blocks = resolve_blocks(model, args.blocks)
    record = ModelRecord(EXTERNAL, arguments, list(mean), list(std), [height, width, channels], names,
                         data={"spec": data.spec, "fingerprint": data.fingerprint} if data else {},
                         training={"imported_weights": str(Path(args.weights).resolve())})
    if data is not None:
        predictions = predict_logits(model, make_loader(data, "test", record), progress="measuring").argmax(1).numpy()
        record.metrics = {"test_accuracy": float((predictions == data.y_test).mean())}
    save_checkpoint(model, record, out)
    return {"checkpoint": str(out), "source": arguments, "blocks": blocks, "input_shape": record.input_shape,
            "classes": len(names), "test_accuracy": record.metrics.get("test_accuracy"),
            "rebuilt_by": arguments.get("factory") or f"{arguments['source']}.{arguments.get('name')}",
            "user_code": arguments["source"] == "factory"}

def _fold_stem(model, arguments: dict, channels: int, in_channels_from: int) -> None:
    """Fold the model's first convolution from ``in_channels_from`` to ``channels``, recorded in
    ``arguments`` so that loading rebuilds the folded stem."""
    first = first_convolution(model)
    if first is None or first[1].in_channels != in_channels_from:
        found = f"takes {first[1].in_channels} channels" if first else "does not exist"
        raise ArchRepairError(f"--in-channels-from {in_channels_from}: the model's first convolution {found}")
    if channels != in_channels_from:
        fold_stem(model, first[0], channels)
        arguments["stem"] = {"module": first[0], "in_channels": channels}

def _refuse_channel_mismatch(model, channels: int) -> None:
    """Name the channel mismatch when that is why the model cannot take the images."""
    first = first_convolution(model)
    if first is not None and first[1].in_channels != channels:
        hint = f"give --in-channels-from {first[1].in_channels} to fold it to one channel" if channels == 1 else \
            "convert the images or the model"
        raise ArchRepairError(f"the model's first convolution {first[0]!r} takes {first[1].in_channels} channels but "
                              f"the images have {channels}; {hint}")

def show(result: dict) -> None:
    console.print(f"wrote [bold]{result['checkpoint']}[/]: blocks {', '.join(result['blocks'])}; input "
                  f"{tuple(result['input_shape'])} (H, W, C), {result['classes']} classes"
                  + (f", test accuracy {percent(result['test_accuracy'])}" if result["test_accuracy"] is not None else ""))
    whose = " (your code: keep it where it is)" if result["user_code"] else ""
    console.print(f"loading it imports and calls {result['rebuilt_by']} again{whose}; weights come from the folder only")

COMMAND = Command(add_arguments, run, show)
