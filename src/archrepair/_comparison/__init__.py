"""Side-by-side comparison of repair methods on one model and failure set, over several seeds.

Example:
    >>> plan = RepairPlan("runs/r18", budget=Budget(epochs=4))                    # doctest: +SKIP
    >>> comparison = compare_methods(prepare(plan), ["archrepair", "network-gradient"], seeds=[0, 1, 2])  # doctest: +SKIP
    >>> write_comparison(comparison, "compare-out")                              # doctest: +SKIP
"""

from .chart import plot_comparison
from .record import Comparison, ComparisonRow
from .run import compare_methods
from .summary import summarise, wilcoxon_against
from .write import markdown_table, write_comparison

__all__ = ["Comparison", "ComparisonRow", "compare_methods", "markdown_table", "plot_comparison", "summarise",
           "wilcoxon_against", "write_comparison"]
