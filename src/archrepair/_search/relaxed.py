"""The relaxed block (paper Eq. 7, 8): every node pair ``i < j`` joined by a softmax-weighted mix
of candidate operations, with the original modules kept (and trained) on the original edges.

Function-preserving start: on an original edge the ``original`` operation starts with logit
``original_logit`` and every candidate with 0; on any other edge ``none`` starts with that logit.
With ``original_logit`` very large the block equals the original exactly; at the default the
original keeps most of the weight, so the model starts close to the original.

Partial channels (PC-DARTS, ``k > 1``): candidate operations see only the first ``C / k``
channels; the other channels bypass (identity, or 2x2 max-pool on reducing edges) scaled by the
weight of the candidates other than ``none``, so that the bypass vanishes when ``original`` or
``none`` holds all the weight. No channel shuffle: the output channels must line up with the
original block's. Edges whose shapes differ in channels use all channels.

Edge normalisation: node ``j`` weights its ``n`` incoming edges by ``n * softmax(beta_j)``, which is
1 for every edge at the uniform start, as in the original sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .edge_group import group_key, mixed_outputs
from .graph import ACTIVATIONS, BlockGraph
from .operations import CANDIDATES, ORIGINAL, build_operation, edge_stride


@dataclass
class SearchSpace:
    """``candidates``: operation names (paper Table 3). ``partial_channels``: k. ``max_span``: join
    only nodes at most this far apart (original edges always), ``None`` for the full DAG."""

    candidates: tuple[str, ...] = CANDIDATES
    partial_channels: int = 4
    edge_normalisation: bool = True
    original_logit: float = 5.0
    max_span: int | None = None


class MixedEdge(nn.Module):
    """``sum_o w_o * op_o(x)`` over the edge's operations; ``x`` is ``(N, c_in, H, W)``, the output
    ``(N, c_out, H / stride, W / stride)``."""

    def __init__(self, c_in: int, c_out: int, stride: int, original: nn.Module | None, space: SearchSpace) -> None:
        super().__init__()
        k = space.partial_channels
        self.partial = k > 1 and c_in == c_out and c_in % k == 0 and stride in (1, 2)
        self.split = c_in // k if self.partial else c_in
        out = c_out // k if self.partial else c_out
        self.names = [name for name in space.candidates] + ([ORIGINAL] if original is not None else [])
        self.ops = nn.ModuleDict({
            name: build_operation(name, self.split, out, stride, affine=False)
            for name in space.candidates if name != "none"
        })
        self.original = original
        self.bypass = (nn.MaxPool2d(2, 2, ceil_mode=True) if stride == 2 else nn.Identity()) if self.partial else None
        self.c_out, self.stride = c_out, stride

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return mixed_outputs([self], x, [weights])[0]


class RelaxedBlock(nn.Module):
    """A block as a DAG of mixed edges; input and output shapes equal the original block's.

    Parameters: the operations' weights (``weight_parameters``) and, separately, the architecture
    ``alphas`` (one logit per operation per edge) and ``betas`` (one per edge, edge normalisation).
    """

    def __init__(self, graph: BlockGraph, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        self.activations = list(graph.activations)
        self.shapes = [list(s) for s in graph.shapes]
        self.pairs: list[tuple[int, int]] = []
        edges, alphas = {}, []
        for j in range(1, graph.num_nodes):
            for i in range(j):
                original = graph.edges.get((i, j))
                if original is None and space.max_span is not None and j - i > space.max_span:
                    continue
                (c_in, _, _), (c_out, _, _) = graph.shapes[i], graph.shapes[j]
                edge = MixedEdge(c_in, c_out, edge_stride(graph.shapes[i], graph.shapes[j]), original, space)
                edges[f"{i}_{j}"] = edge
                start = torch.zeros(len(edge.names))
                start[edge.names.index(ORIGINAL if original is not None else "none")] = space.original_logit
                alphas.append(nn.Parameter(start))
                self.pairs.append((i, j))
        self.edges = nn.ModuleDict(edges)
        self.alphas = nn.ParameterList(alphas)
        incoming = [sum(1 for _, j in self.pairs if j == node) for node in range(len(self.shapes))]
        self.betas = nn.ParameterList([nn.Parameter(torch.zeros(max(n, 1))) for n in incoming])
        self.node_activations = nn.ModuleList([ACTIVATIONS[name]() for name in self.activations])
        groups: list[dict[tuple, list[int]]] = [{} for _ in self.shapes]
        for e, (i, j) in enumerate(self.pairs):
            groups[i].setdefault(group_key(self.edges[f"{i}_{j}"]), []).append(e)
        self.leaving = [list(by_key.values()) for by_key in groups]  # per node: edge indices that run together

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.edges.parameters())

    def architecture_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas) + (list(self.betas) if self.space.edge_normalisation else [])

    def edge_weights(self) -> dict[tuple[int, int], float]:
        """``n * softmax(beta_j)`` per edge (1 without edge normalisation)."""
        result = {}
        for j in range(1, len(self.shapes)):
            sources = [i for i, k in self.pairs if k == j]
            scale = len(sources) * torch.softmax(self.betas[j].detach(), 0) if self.space.edge_normalisation else None
            for position, i in enumerate(sources):
                result[(i, j)] = float(scale[position]) if scale is not None else 1.0
        return result

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Node by node; the edges leaving a node run together, grouped by :func:`group_key`."""
        nodes = [x]
        arriving: list[list[torch.Tensor]] = [[] for _ in self.shapes]  # in source order: the order of pairs
        for node in range(len(self.shapes)):
            if node > 0:
                terms = arriving[node]
                scale = len(terms) * torch.softmax(self.betas[node], 0) if self.space.edge_normalisation else None
                total = None
                for position, term in enumerate(terms):
                    term = scale[position] * term if scale is not None else term
                    total = term if total is None else total + term
                nodes.append(self.node_activations[node - 1](total))
            for group in self.leaving[node]:
                weights = [torch.softmax(self.alphas[e], 0) for e in group]
                targets = [self.pairs[e][1] for e in group]
                outputs = mixed_outputs([self.edges[f"{node}_{j}"] for j in targets], nodes[node], weights)
                for j, output in zip(targets, outputs):
                    arriving[j].append(output)
        return nodes[-1]
