"""Loading a checkpoint together with its data, as the model-consuming commands do."""

from __future__ import annotations

import argparse

from .._api import Problem, load_problem
from ..data import FailureSplit


def load_model_and_data(args: argparse.Namespace) -> Problem:
    """The checkpoint ``args.checkpoint`` and the data ``args.data`` (default: its training data),
    checked to fit, with ``--corruption`` applied to the test split."""
    corruption = getattr(args, "corruption", None)
    return load_problem(
        args.checkpoint, args.data,
        corruption={"name": corruption, "severity": args.severity, "seed": args.corruption_seed} if corruption else None,
        corruption_dir=getattr(args, "corruption_dir", None), device=args.device, batch_size=args.batch_size,
        amp=args.amp, channels_last=args.channels_last,
    )


def failure_split_for(loaded: Problem, failures: str | None, count: int, seed: int) -> FailureSplit:
    """The split in the file ``failures`` (checked), or ``count`` failures of the model chosen now."""
    return loaded.failures(failures, count, seed)
