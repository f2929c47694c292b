"""Architecture search for one block: search space, relaxed block, search, discretisation."""

from .discrete import RULES, DiscreteBlock, Genotype, discretise
from .graph import BlockGraph, block_graph
from .operations import CANDIDATES, ORIGINAL, build_operation
from .optimise import SearchConfig, SearchEpoch, SearchHistory, search
from .relaxed import MixedEdge, RelaxedBlock, SearchSpace
from .surgery import block_input, check_relaxable, trainable_only, with_discrete_block

__all__ = [
    "CANDIDATES", "ORIGINAL", "RULES", "BlockGraph", "DiscreteBlock", "Genotype", "MixedEdge", "RelaxedBlock",
    "SearchConfig", "SearchEpoch", "SearchHistory", "SearchSpace", "block_graph", "build_operation", "discretise",
    "block_input", "check_relaxable", "search", "trainable_only", "with_discrete_block",
]
