"""How many rows the localisation needs: the block chosen from every fit row of ``D_repair`` (the
whole training set) against the block chosen from ``D_fail`` plus a seeded sample of the other rows.

    python benchmarks/localize_rows.py [--model resnet18-w0.25-deployed80] [--sizes 1000,2000,5000] [--seeds 3]

On a shared base model with 1,000 test failures as ``D_fail`` and the whole training set in
``D_repair`` (the repair default's ``localize_rows`` is 5,000): for each sample size and seed, the
chosen block (spectrum and shift), whether it equals the all-rows choice, and the seconds taken.
"""

from __future__ import annotations

import argparse
import time

from common import prepared, print_headline

from archrepair import LocalizeConfig
from archrepair._localize import localize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18-w0.25-deployed80")
    parser.add_argument("--sizes", default="1000,2000,5000")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    plan = prepared(args.model, train_examples=None, thin_validation=False)
    model = plan.problem.model

    def choose(task, limit):
        rows = task.localization_rows(limit)
        started = time.perf_counter()
        chosen = {method: localize(model, task.loader(rows), task.input_shape, config=LocalizeConfig(method=method),
                                   progress=False).chosen for method in ("spectrum", "shift")}
        return chosen, len(rows), (time.perf_counter() - started) / 2

    task = plan.task(0)
    reference, rows, seconds = choose(task, None)
    print(f"all {rows} fit rows: spectrum {reference['spectrum']}, shift {reference['shift']}, {seconds:.1f} s per method")
    print("rows | seed | spectrum | same | shift | same | seconds per method")
    headline = {"all_rows": rows, "all_rows_seconds": round(seconds, 1), "all_rows_spectrum": reference["spectrum"]}
    for size in (int(s) for s in args.sizes.split(",")):
        agree = {"spectrum": 0, "shift": 0}
        times = []
        for seed in range(args.seeds):
            sampled = plan.task(seed)
            chosen, rows, seconds = choose(sampled, size)
            times.append(seconds)
            for method in agree:
                agree[method] += chosen[method] == reference[method]
            print(f"{rows} | {seed} | {chosen['spectrum']} | {chosen['spectrum'] == reference['spectrum']} | "
                  f"{chosen['shift']} | {chosen['shift'] == reference['shift']} | {seconds:.1f}", flush=True)
        headline[f"rows_{size}_spectrum_agreement"] = f"{agree['spectrum']}/{args.seeds}"
        headline[f"rows_{size}_shift_agreement"] = f"{agree['shift']}/{args.seeds}"
        headline[f"rows_{size}_seconds"] = round(sum(times) / len(times), 1)
    print_headline(headline)


if __name__ == "__main__":
    main()
