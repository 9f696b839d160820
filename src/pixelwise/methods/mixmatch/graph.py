"""The 'match' step of Mix-and-Match (Zhan et al. 2018, §3 "The Match Step - Perceptual Patch Graph").

Nodes are the mixed patches; an edge is *attractive* between two nodes of the same class and *rejective* between
nodes of different classes. The graph is built iteratively: "patches are absorbed individually into the graph as a
node and it creates respectively one 'attractive' and 'rejective' edge with existing nodes in the graph"
(Fig. 3(b)). Every node is then an anchor with its two edges giving the positive and the negative: N triplets for
N nodes (§4). Because each node of a class (but the first) attaches to an earlier node of the same class, a class's
attractive edges form a random spanning tree of its nodes: the graph is *class-wise connected* (Fig. 3(c)), which
is the global consistency 'random triplets' (Fig. 3(a), Schroff et al. 2015) lack.

Rules for the corner cases (§4 and the authors' code, specs/mix-and-match.md): a node with no earlier node of its
class takes a random other node of its class as positive, or itself when its label is unique ("we duplicate it
as its positive counterpart"); a node with no earlier node of another class takes a random node of another class;
a batch of one class has no negative at all and gives no triplet (no gradient).
"""

from __future__ import annotations

import torch


def class_wise_connected_triplets(
    labels: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Triplets [N, 3] (anchor, positive, negative) of node indices, one per node; [0, 3] for a single class."""
    labels = labels.detach().to("cpu", torch.long)
    count = labels.numel()
    if count == 0 or (labels == labels[0]).all():
        return torch.zeros(0, 3, dtype=torch.long)
    order = torch.randperm(count, generator=generator).tolist()  # the order nodes are absorbed in
    draws = torch.rand(count, 2, generator=generator).tolist()  # one draw per edge, so one RNG call per graph
    values = labels.tolist()
    members: dict[int, list[int]] = {}  # class -> all its nodes (for the fallbacks)
    for node, label in enumerate(values):
        members.setdefault(label, []).append(node)
    seen: dict[int, list[int]] = {}  # class -> nodes already in the graph
    absorbed: list[int] = []
    triplets = []
    for node, (u_pos, u_neg) in zip(order, draws):
        label = values[node]
        same = seen.setdefault(label, [])
        if same:  # the attractive edge: a random earlier node of the class (spanning-tree edge)
            positive = same[int(u_pos * len(same))]
        else:  # first of its class: a random other node of the class, itself if the label is unique
            others = [n for n in members[label] if n != node]
            positive = others[int(u_pos * len(others))] if others else node
        different = [n for n in absorbed if values[n] != label]
        if not different:  # no earlier node of another class yet: any node of another class
            different = [n for n in range(count) if values[n] != label]
        negative = different[int(u_neg * len(different))]
        triplets.append((node, positive, negative))
        same.append(node)
        absorbed.append(node)
    return torch.tensor(triplets, dtype=torch.long)


def random_triplets(labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The 'random triplets' baseline (Fig. 3(a), Table 1): disjoint same-class pairs, each with a random negative.

    Each class's nodes are shuffled and paired up (an odd one out is left unused), so there are
    sum_c floor(n_c / 2) ~ N/2 triplets and no constraint links the pairs of one class. [0, 3] for one class.
    """
    labels = labels.detach().to("cpu", torch.long)
    if labels.numel() == 0 or (labels == labels[0]).all():
        return torch.zeros(0, 3, dtype=torch.long)
    triplets = []
    for label in labels.unique().tolist():
        nodes = (labels == label).nonzero().flatten()
        nodes = nodes[torch.randperm(len(nodes), generator=generator)]
        pairs = nodes[: len(nodes) // 2 * 2].view(-1, 2)
        if not len(pairs):
            continue
        others = (labels != label).nonzero().flatten()
        negatives = others[torch.randint(len(others), (len(pairs),), generator=generator)]
        triplets.append(torch.cat([pairs, negatives[:, None]], dim=1))
    return torch.cat(triplets) if triplets else torch.zeros(0, 3, dtype=torch.long)


TRIPLET_SAMPLERS = {"graph": class_wise_connected_triplets, "random": random_triplets}
