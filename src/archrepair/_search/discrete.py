"""Discretisation (paper: the operation with the largest weight on each edge, ``none`` drops the
edge; PC-DARTS' top-2 edges per node as an option) and the discrete block made of ordinary modules."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import List

import torch
from torch import nn

from ..errors import ArchRepairError
from .operations import CANDIDATES, ORIGINAL, build_operation, edge_stride
from .relaxed import RelaxedBlock

RULES = ("edge", "top2")


@dataclass
class Genotype:
    """The searched architecture of one block.

    ``edges``: kept edges as ``{"source", "target", "op", "weight"}`` (``weight`` is the op's softmax
    weight times the edge's normalised weight); ``activations``: per node 1..K; ``shapes``:
    ``(C, H, W)`` per node; ``alphas``: every edge's softmax weights, for the record.
    """

    edges: list[dict]
    activations: list[str]
    shapes: list[list[int]]
    rule: str = "edge"
    alphas: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict) -> "Genotype":
        """A genotype from its JSON form, checked: known keys and operations, edges between nodes."""
        try:
            genotype = cls(**raw)
        except TypeError as error:
            raise ArchRepairError(f"the genotype is not one archrepair wrote ({error})") from None
        nodes = len(genotype.shapes)
        for edge in genotype.edges:
            if not isinstance(edge, dict) or set(edge) - {"source", "target", "op", "weight"} or \
                    not {"source", "target", "op"} <= set(edge):
                raise ArchRepairError(f"the genotype has a malformed edge {edge!r}")
            if edge["op"] not in (ORIGINAL, *CANDIDATES):
                raise ArchRepairError(f"the genotype has an unknown operation {edge['op']!r}; "
                                      f"known: {', '.join((ORIGINAL, *CANDIDATES))}")
            if not (isinstance(edge["source"], int) and isinstance(edge["target"], int)
                    and 0 <= edge["source"] < edge["target"] < nodes):
                raise ArchRepairError(f"the genotype has an edge {edge['source']!r}->{edge['target']!r} "
                                      f"outside its {nodes} nodes")
        if len(genotype.activations) != nodes - 1 or any(a not in ("identity", "relu", "silu") for a in genotype.activations):
            raise ArchRepairError(f"the genotype's activations {genotype.activations!r} do not fit its {nodes} nodes")
        return genotype

    def is_original(self, original_edges) -> bool:
        kept = {(e["source"], e["target"]) for e in self.edges if e["op"] == ORIGINAL}
        return kept == set(original_edges) and all(e["op"] == ORIGINAL for e in self.edges)

    def describe(self) -> str:
        return ", ".join(f"{e['source']}->{e['target']}:{e['op']}" for e in self.edges)


def discretise(block: RelaxedBlock, rule: str = "edge") -> Genotype:
    """Choose the discrete architecture from the architecture weights of ``block``."""
    if rule not in RULES:
        raise ArchRepairError(f"unknown discretisation rule {rule!r}; choose one of {', '.join(RULES)}")
    edge_scale = block.edge_weights()
    choices, record = [], []
    for e, (i, j) in enumerate(block.pairs):
        names = block.edges[f"{i}_{j}"].names
        weights = torch.softmax(block.alphas[e].detach(), 0)
        record.append({"source": i, "target": j, "weights": {n: round(float(w), 6) for n, w in zip(names, weights)}})
        if rule == "edge":
            best = int(weights.argmax())
        else:  # strongest operation other than none
            best = max((k for k, n in enumerate(names) if n != "none"), key=lambda k: float(weights[k]))
        choices.append({"source": i, "target": j, "op": names[best],
                        "weight": float(weights[best]) * edge_scale[(i, j)]})
    if rule == "edge":
        kept = [c for c in choices if c["op"] != "none"]
    else:
        kept = []
        for j in range(1, len(block.shapes)):
            incoming = sorted((c for c in choices if c["target"] == j), key=lambda c: -c["weight"])
            kept += sorted(incoming[:2], key=lambda c: c["source"])
    return Genotype(kept, list(block.activations), [list(s) for s in block.shapes], rule, record)


class DiscreteBlock(nn.Module):
    """The searched block: node ``j`` = activation(sum of its kept edges' operations).

    Built from ordinary modules only (no mixed operations, no architecture parameters), so it
    saves, loads and exports to TorchScript like any block. Input ``(N, C_0, H_0, W_0)``, output
    ``(N, C_K, H_K, W_K)`` as the original block.
    """

    def __init__(self, genotype: Genotype, original_edges: dict[tuple[int, int], nn.Module],
                 searched: RelaxedBlock | None = None) -> None:
        super().__init__()
        edges = sorted(genotype.edges, key=lambda e: (e["target"], e["source"]))
        ops = []
        for edge in edges:
            i, j = edge["source"], edge["target"]
            if edge["op"] == ORIGINAL:
                ops.append(copy.deepcopy(original_edges[(i, j)]))
                continue
            (c_in, _, _), (c_out, _, _) = genotype.shapes[i], genotype.shapes[j]
            op = build_operation(edge["op"], c_in, c_out, edge_stride(genotype.shapes[i], genotype.shapes[j]), affine=True)
            if searched is not None:
                _inherit(op, searched.edges[f"{i}_{j}"], edge["op"])
            ops.append(op)
        self.ops = nn.ModuleList(ops)
        self.sources = [e["source"] for e in edges]
        self.targets = [e["target"] for e in edges]
        self.activations = list(genotype.activations)
        self.shapes = [list(s) for s in genotype.shapes]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        nodes: list[torch.Tensor] = [x]
        sums: list[torch.Tensor] = []
        for shape in self.shapes[1:]:
            sums.append(x.new_zeros([batch] + shape))
        for index, op in enumerate(self.ops):
            while len(nodes) <= self.sources[index]:
                nodes.append(_activate(sums[len(nodes) - 1], self.activations[len(nodes) - 1]))
            target = self.targets[index]
            sums[target - 1] = sums[target - 1] + op(nodes[self.sources[index]])
        while len(nodes) < len(self.shapes):
            nodes.append(_activate(sums[len(nodes) - 1], self.activations[len(nodes) - 1]))
        return nodes[-1]


# TorchScript reads attribute types from real (not postponed, string) annotations
DiscreteBlock.__annotations__ = {"sources": List[int], "targets": List[int], "activations": List[str],  # noqa: UP006
                                 "shapes": List[List[int]]}  # noqa: UP006


def _activate(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == "relu":
        return torch.relu(x)
    if name == "silu":
        return nn.functional.silu(x)
    return x


def _inherit(op: nn.Module, edge, name: str) -> None:
    """Copy searched weights into a full-width discrete op (only where the edge used all channels);
    BatchNorm gains the affine scale 1 and shift 0 and keeps the searched running statistics."""
    if edge.partial or name not in edge.ops:
        return
    source = edge.ops[name].state_dict()
    target = op.state_dict()
    for key, value in source.items():
        if key in target and target[key].shape == value.shape:
            target[key] = value.clone()
    op.load_state_dict(target)
