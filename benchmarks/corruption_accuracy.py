"""Does a trained model see our corruptions as it sees the original generator's?

    python benchmarks/corruption_accuracy.py [--model resnet18-w0.25-e21] [--seeds 0]

A CIFAR-10 ResNet-18 (width 0.25, from train_base.py) is evaluated on the first 250 exact
CIFAR-10 test images corrupted by the original generator (../shared/data/cifar10c, the
reference) and by archrepair.data.corruptions (procedural frost texture, as the product ships),
at all 15 corruptions x 5 severities. Prints, per corruption, the accuracy on each averaged over
the severities and the difference (the acceptance bound is 3 points), plus frost with the
reference's texture photographs.
"""

from __future__ import annotations

import argparse

import numpy as np
from common import load_cached_model, print_headline, shared_data_dir

from archrepair.data import BatchLoader
from archrepair.data.corruptions import NAMES, corrupt
from archrepair.data.corruptions.textures import load_textures
from archrepair.evaluate import predict_logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18-w0.25-e21")
    parser.add_argument("--seeds", default="0", help="seeds of our corruptions (the mean over them is compared)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    model, record = load_cached_model(args.model)
    data_dir = shared_data_dir() / "cifar10c"
    reference = np.load(data_dir / "cifar10c-ref-250.npz")
    labels = reference["labels"][:250]
    clean = np.load(shared_data_dir() / "cifar10" / "cifar10-exact-subset.npz")["x_test"][:250]

    def accuracy(images: np.ndarray) -> float:
        loader = BatchLoader(images, labels, record.mean, record.std, batch_size=250)
        return float((predict_logits(model, loader).argmax(1).numpy() == labels).mean())

    print(f"{args.model}: clean accuracy on the 250 images {100 * accuracy(clean):.1f}%; our seeds {seeds}")
    print("corruption | reference % | ours % | difference (pts) | per severity, ours - reference")
    textures = load_textures([str(data_dir / "frost" / n) for n in
                              ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")])
    differences = {}
    for name in NAMES + ["frost (reference textures)"]:
        key = name.split(" ")[0]
        theirs, ours = [], []
        for severity in range(1, 6):
            theirs.append(accuracy(reference[key][(severity - 1) * 250 : severity * 250]))
            given = textures if name != key else None
            ours.append(np.mean([accuracy(corrupt(clean, key, severity, seed, frost_textures=given)) for seed in seeds]))
        difference = 100 * (np.mean(ours) - np.mean(theirs))
        differences[name] = round(float(difference), 2)
        per_severity = " ".join(f"{100 * (o - t):+.1f}" for o, t in zip(ours, theirs))
        print(f"{name} | {100 * np.mean(theirs):.1f} | {100 * np.mean(ours):.1f} | {difference:+.2f} | {per_severity}",
              flush=True)
    worst = max(differences, key=lambda n: abs(differences[n]))
    within = sum(abs(differences[n]) <= 3 for n in NAMES)
    print(f"{within}/15 corruptions within 3 points; largest difference {worst} {differences[worst]:+.2f}")
    print_headline({"within_3_points": within, "of": 15, "largest": worst, "largest_points": differences[worst],
                    "mean_abs_points": round(float(np.mean([abs(differences[n]) for n in NAMES])), 2)})


if __name__ == "__main__":
    main()
