"""The corruption scenario's accuracy table: the original, returned and candidate models on the test
hold-out's images, clean and under each of the 15 corruptions at the scenario's severity (the paper's
Table 7 and Figs. 4/6; the mean over the 15 is Table 8's robust accuracy).

The repair's own corruption (the *target*) and the clean images are judged on the whole hold-out,
the 14 others on a sample of it drawn with the run's seed. The corrupted copies of the test split are
made once per process (seed 0, as the scenario's target is), over the whole split, so that a row's
images do not depend on which rows are sampled.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

OTHERS_SAMPLE = 2000
_SETS: dict[tuple[str, int], dict[str, np.ndarray]] = {}


def corrupted_sets(clean, severity: int) -> dict[str, np.ndarray]:
    """``{"clean": x_test, <corruption>: x_test corrupted, ...}`` (uint8 NHWC) of the data ``clean``,
    kept for the process's later runs."""
    from ..data.corruptions import NAMES, corrupt_many

    key = (clean.fingerprint, int(severity))
    if key not in _SETS:
        _SETS.clear()  # one data set at a time: 16 copies of a test split are large
        jobs = [(name, int(severity)) for name in NAMES]
        _SETS[key] = {"clean": clean.x_test} | {name: images for (name, _), images in
                                                 corrupt_many(clean.x_test, jobs, seed=0, workers=1)}
    return _SETS[key]


def shift_table(clean, target: str, severity: int, models: dict[str, torch.nn.Module], record,
                holdout: np.ndarray, seed: int, others_sample: int = OTHERS_SAMPLE) -> dict[str, dict[str, float]]:
    """``{image set: {model name: accuracy %}}`` for ``models`` (e.g. original, returned, candidate)
    on the ``holdout`` test rows of ``clean`` (a :class:`~archrepair.data.ImageData`), clean and under
    each corruption at ``severity``; the ``target`` corruption and the clean images on every hold-out
    row, the others on ``others_sample`` rows drawn with ``seed``."""
    from ..base_model import make_loader
    from ..evaluate import predict_logits

    held = np.asarray(holdout)
    sample = np.sort(np.random.default_rng(seed).choice(held, min(others_sample, len(held)), replace=False))
    table = {}
    for name, images in corrupted_sets(clean, severity).items():
        rows = held if name in ("clean", target) else sample
        loader = make_loader(replace(clean, x_test=images, _fingerprint=None), "test", record, indices=rows)
        labels = clean.y_test[rows]
        table[name] = {who: round(100 * float((predict_logits(model, loader).argmax(1).numpy() == labels).mean()), 2)
                       for who, model in models.items()}
    return table
