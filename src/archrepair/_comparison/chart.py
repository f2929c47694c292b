"""Bar chart of a comparison: mean change in accuracy (without D_fail) and mean fix rate per method."""

from __future__ import annotations

import io
from pathlib import Path

from ..fileio import write_bytes_atomically
from .record import Comparison
from .summary import summarise


def plot_comparison(comparison: Comparison, path: str | Path) -> Path:
    """Save a PNG with two panels, one bar per method with the standard deviation over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarise(comparison)
    names = [entry["method"] for entry in summary]
    figure, (left, right) = plt.subplots(1, 2, figsize=(max(6.0, 1.3 * len(names) + 2), 3.6))
    left.bar(names, [e["change_points"] for e in summary], yerr=[e["change_points_sd"] for e in summary], capsize=3)
    left.axhline(0, color="black", linewidth=0.8)
    left.set_ylabel("change in accuracy without D_fail (points)")
    right.bar(names, [100 * e["fix_rate"] for e in summary], yerr=[100 * e["fix_rate_sd"] for e in summary],
              capsize=3, color="tab:orange")
    right.set_ylabel("D_fail fixed (%)")
    for axis in (left, right):
        axis.tick_params(axis="x", rotation=35)
        for label in axis.get_xticklabels():
            label.set_horizontalalignment("right")
    figure.suptitle(f"{len(comparison.seeds)} seeds, budget {comparison.budget}", fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    write_bytes_atomically(Path(path), buffer.getvalue())
    return Path(path)
