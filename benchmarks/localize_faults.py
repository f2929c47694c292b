"""Fault injection: damage one block at a time and check which block the localiser names.

Each block in turn gets Gaussian noise added to its convolution weights (noise std = scale x the
weight's std), the scale found by bisection so that test accuracy drops by 15 points (10-20 allowed).
The failures of the damaged model (up to 1,000 test examples) and 1,000 training examples form
D_repair. Reported: the block named by the reweighted score (the paper's), by the spectrum alone,
by the gradient alone and by the normalisation-statistics shift (``method="shift"``), for the small CNN on the digits (3 noise seeds) and for ResNet-18
(width 0.25, converged checkpoint from train_base.py) on the shared CIFAR-10.

    python benchmarks/localize_faults.py [--skip-resnet]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import cifar10_spec, load_cached_model, print_headline

from archrepair.base_model import TrainJob, make_loader, train_base_model
from archrepair.data import BatchLoader, load_data, select_failures
from archrepair.data.repair_set import repair_set
from archrepair.evaluate import predict_logits
from archrepair._localize import LocalizeConfig, localize
from archrepair._localize.faults import add_weight_noise, noise_for_drop
from archrepair.models import default_blocks
from archrepair.train import TrainConfig


def study(name, model, record, data, seeds, level, calibration_size):
    rows = []
    blocks = default_blocks(model)
    height, width, channels = record.input_shape
    subset = np.arange(min(calibration_size, len(data.y_test)))
    calibration = make_loader(data, "test", record, indices=subset)
    test = make_loader(data, "test", record)
    for seed in seeds:
        for block in blocks:
            scale, drop = noise_for_drop(model, block, calibration, 0.15, seed)
            damaged = add_weight_noise(model, block, scale, seed)
            predictions = predict_logits(damaged, test).argmax(1).numpy()
            split = select_failures(predictions, data.y_test, 1000, seed, protocol="paper")
            repair = repair_set(data, split, 1000, seed)
            loader = BatchLoader(repair.x, repair.y, record.mean, record.std, batch_size=256)
            report = localize(damaged, loader, (channels, height, width), config=LocalizeConfig(level=level, method="shift"), progress=False)
            rows.append({"model": name, "seed": seed, "damaged": block, "scale": round(scale, 3),
                         "drop": round(drop, 3), "reweighted": report.ranking_reweighted[0],
                         "spectrum": report.ranking_spectrum[0], "gradient": report.ranking_gradient[0],
                         "shift": report.chosen,
                         "shifts": " ".join(f"{row.shift:.2f}" for row in report.blocks)})
            print(" | ".join(str(v) for v in rows[-1].values()), flush=True)
    return rows


def hit_rate(rows, key):
    return round(sum(r[key] == r["damaged"] for r in rows) / len(rows), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--level", type=int, default=50)
    parser.add_argument("--resnet-seeds", default="0,1,2", help="noise seeds for ResNet-18 (default: 0,1,2)")
    args = parser.parse_args()
    torch.manual_seed(0)
    print("model | seed | damaged | noise scale | accuracy drop | reweighted | spectrum | gradient | shift | shift added per block")
    digits = load_data("digits")
    base, record, _ = train_base_model(digits, TrainJob("small_cnn", 1.0, seed=0), TrainConfig(epochs=15, lr=0.05),
                                       "benchmarks/cache/digits-small-cnn", torch.device("cpu"))
    rows = study("small_cnn", base.eval(), record, digits, [0, 1, 2], min(args.level, 20), 540)
    figures = {f"small_cnn_{k}": hit_rate(rows, k) for k in ("reweighted", "spectrum", "gradient", "shift")}
    if not args.skip_resnet:
        model, record = load_cached_model("resnet18-w0.25-converged")
        resnet_rows = study("resnet18", model, record, load_data(cifar10_spec()),
                            [int(v) for v in args.resnet_seeds.split(",")], args.level, 2000)
        figures.update({f"resnet18_{k}": hit_rate(resnet_rows, k) for k in ("reweighted", "spectrum", "gradient", "shift")})
        rows += resnet_rows
    figures["cases"] = len(rows)
    print_headline(figures)


if __name__ == "__main__":
    main()
