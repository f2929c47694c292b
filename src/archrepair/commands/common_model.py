"""Loading a checkpoint together with its data, as the model-consuming commands do."""

from __future__ import annotations

import argparse

from ..problem import Problem, load_problem


def corruption_of(args: argparse.Namespace) -> dict | None:
    """``{"name", "severity", "seed"}`` of ``--corruption`` (the robustness scenario), or ``None``."""
    name = getattr(args, "corruption", None)
    return {"name": name, "severity": args.severity, "seed": args.corruption_seed} if name else None


def load_model_and_data(args: argparse.Namespace) -> Problem:
    """The checkpoint ``args.checkpoint`` and the data ``args.data`` (default: its training data),
    checked to fit, with ``--corruption`` or ``--field`` replacing the test split. Its ``failures(path, count,
    seed)`` gives the failure split of ``--failures`` (checked) or chooses one."""
    return load_problem(
        args.checkpoint, args.data, corruption=corruption_of(args), corruption_dir=getattr(args, "corruption_dir", None),
        field=getattr(args, "field", None),
        device=args.device, batch_size=args.batch_size, amp=args.amp, channels_last=args.channels_last,
    )
