"""What accuracy on the test set without D_fail can be expected at all: reference models.

The evaluation split (the test set without D_fail) is enriched in examples the deployed model
already gets right: D_fail took a share of its failures away. Any model whose errors differ from
the deployed model's loses there, even a better one. For each deployed model (under-trained and
converged ResNet-18 width 0.25, D_fail = 1,000 misclassified test examples, seed 0) this prints
the accuracy on its evaluation split of:
  - the other cached, independently trained models (with their full-test accuracy);
  - its own descendants that never see D_fail: the whole network, and layer4 alone, trained
    further on the training data (the 45,000 rows the base model trained on, no augmentation)
    for --epochs epochs with a cosine learning rate from --lr (SGD, momentum 0.9, batch 64).

Under the ``heldout`` protocol (the default since #14) it also prints, for each seed of
``--seeds``, every reference model's change on that seed's test hold-out with its paired
bootstrap 95% interval, and whether the interval holds the model's change on the full test set
(the calibration check: the hold-out's figure should agree with the full test set's; the paper's
figure does not).

    python benchmarks/eval_set_reference.py [--epochs 2] [--lr 0.01] [--seeds 0,1,2,3,4,5]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
from common import cifar10_spec, load_cached_model, prepared, print_headline

from archrepair.base_model import make_loader
from archrepair.data import load_data, select_failures
from archrepair.evaluate import predict_logits
from archrepair._repair.outcome import holdout_figures
from archrepair._search.surgery import trainable_only
from archrepair.train import TrainConfig, fit

MODELS = {"undertrained": "resnet18-w0.25-deployed80", "converged": "resnet18-w0.25-converged",
          "e21": "resnet18-w0.25-e21"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--bases", default="undertrained,converged")
    parser.add_argument("--seeds", default="0,1,2,3,4,5", help="hold-out splits to check the calibration on")
    args = parser.parse_args()
    data = load_data(cifar10_spec())
    loaded = {kind: load_cached_model(name) for kind, name in MODELS.items()}
    test = make_loader(data, "test", loaded["undertrained"][1])
    predictions = {kind: predict_logits(model, test).argmax(1).numpy() for kind, (model, _) in loaded.items()}
    print("base | model | full test % | eval split % | change pts | D_fail fixed % | seconds")
    figures = {}
    for base in args.bases.split(","):
        plan = prepared(MODELS[base], 1000, 0, train_examples=None, thin_validation=False)
        model, split = plan.problem.model, plan.split
        evaluation = np.setdiff1d(np.arange(len(data.y_test)), split.fail_indices)

        def show(name: str, predicted: np.ndarray, seconds: float = 0.0, key: str | None = None) -> None:
            full = 100 * (predicted == data.y_test).mean()
            on_eval = 100 * (predicted[evaluation] == data.y_test[evaluation]).mean()
            change = on_eval - 100 * (predictions[base][evaluation] == data.y_test[evaluation]).mean()
            fixed = 100 * (predicted[split.fail_indices] == data.y_test[split.fail_indices]).mean()
            print(f"{base} | {name} | {full:.2f} | {on_eval:.2f} | {change:+.2f} | {fixed:.1f} | {seconds:.0f}", flush=True)
            figures[f"{base}_{key or name}_change_points"] = round(change, 2)
            full_change = full - 100 * (predictions[base] == data.y_test).mean()
            agree = []
            for seed in (int(s) for s in args.seeds.split(",")):
                held = select_failures(predictions[base], data.y_test, 1000, seed).holdout_indices
                figure = holdout_figures(predictions[base], predicted, data.y_test, np.asarray(held), seed)
                low, high = figure["change_interval_points"]
                agree.append(bool(low <= full_change <= high))
                print(f"    hold-out seed {seed}: {figure['change_points']:+.2f} [{low:+.2f}, {high:+.2f}] against "
                      f"{full_change:+.2f} on the full test set: {'agrees' if agree[-1] else 'DISAGREES'}; negative "
                      f"flips {100 * figure['negative_flip_rate']:.2f}%", flush=True)
            figures[f"{base}_{key or name}_full_test_change_points"] = round(full_change, 2)
            figures[f"{base}_{key or name}_holdout_agrees_on_seeds"] = f"{sum(agree)}/{len(agree)}"

        for kind in MODELS:
            if kind != base:
                show(kind, predictions[kind])
        task = plan.task()
        training_rows = task.fit_indices[task.fit_indices >= task.repair.num_failures]  # no D_fail
        for part in ("network", "layer4"):
            descendant = copy.deepcopy(model)
            set_mode = trainable_only(descendant, descendant.layer4) if part == "layer4" else None
            started = time.perf_counter()
            fit(descendant, task.loader(training_rows, 64, shuffle=True),
                TrainConfig(epochs=args.epochs, batch_size=64, lr=args.lr, weight_decay=5e-4, schedule="cosine"),
                set_train_mode=set_mode, description=f"{part} on training data")
            show(f"{part} trained {args.epochs} more epochs without D_fail",
                 predict_logits(descendant.eval(), test).argmax(1).numpy(), time.perf_counter() - started,
                 key=f"{part}_more_epochs")
    print_headline(figures)


if __name__ == "__main__":
    main()
