"""``archrepair corrupt``: write a corrupted copy of a data set's test split in the official layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data import load_data
from ..errors import ArchRepairError
from ..data.corrupted import parse_corruptions, write_cifar_c, write_imagefolder_c
from ..data.corruptions import PRESETS, preset_for
from ..data.corruptions.textures import load_textures
from .._checks import int_list, non_negative_int, output_lock, positive_int
from .base import Command, add_data, add_overwrite, checked_out, console, data_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data(parser)
    parser.add_argument("--out", required=True, help="folder to write")
    parser.add_argument("--corruptions", default="all", help="all, or comma-separated names (default: all)")
    parser.add_argument("--severities", type=int_list(1, 5), default=[1, 2, 3, 4, 5],
                        help="comma-separated severities, written in increasing order (default: 1,2,3,4,5)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--layout", choices=("cifar", "imagefolder"), default="cifar",
                        help="cifar: <name>.npy severity-major + labels.npy (CIFAR-10-C); "
                             "imagefolder: <name>/<severity>/<class>/*.png (Tiny-ImageNet-C)")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="constants: cifar (CIFAR-10-C, 32 px) or tiny-imagenet (Tiny-ImageNet-C, 64 px); "
                             "default by image size (up to 48 px: cifar)")
    parser.add_argument("--workers", type=positive_int, help="processes (default: one per CPU core)")
    parser.add_argument("--frost-textures", nargs="*",
                        help="texture images for frost, scaled by the preset's factor (default: a procedural texture)")
    add_overwrite(parser)


def run(args: argparse.Namespace) -> dict:
    out = checked_out(args, data_path(args.data), *(args.frost_textures or []))
    names = parse_corruptions(args.corruptions)
    with output_lock(out):
        return _write(args, names, args.severities)


def _write(args: argparse.Namespace, names: list[str], severities: list[int]) -> dict:
    data = load_data(args.data)
    if data.image_shape[-1] != 3:  # before any file is written
        raise ArchRepairError(f"data {args.data!r} has {data.image_shape[-1]}-channel images; the corruptions take RGB "
                              "images (CIFAR-10, Tiny-ImageNet, an RGB image folder)")
    preset = args.preset or preset_for(data.x_test.shape[1])
    textures = load_textures(args.frost_textures, PRESETS[preset]["frost_scale"]) if args.frost_textures else None
    writer = write_cifar_c if args.layout == "cifar" else write_imagefolder_c
    written = writer(data, Path(args.out), names, severities, args.seed, textures, preset=preset, workers=args.workers)
    return {"out": args.out, "layout": args.layout, "preset": preset, "corruptions": names, "severities": severities,
            "images_per_set": int(len(data.y_test)), "seed": args.seed, "files": [str(p) for p in written],
            "frost": "given textures" if textures else "procedural texture"}


def show(result: dict) -> None:
    console.print(f"wrote {len(result['corruptions'])} corruptions x severities {result['severities']} of "
                  f"{result['images_per_set']} images to [bold]{result['out']}[/] ({result['layout']} layout)")


COMMAND = Command(add_arguments, run, show)
