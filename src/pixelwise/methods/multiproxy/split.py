"""Disjoint weights (Larsson §4.4): split-weights (online) and split-activations (separate columns).

Every layer's output channels are partitioned among the M tasks (contiguous groups, sizes within one), and all
weights *into* group m, from any input column, belong to task m: task m's loss updates only those, so no weight
gets gradients from two tasks, while every column still reads the others' activations. BatchNorm's scale and
shift follow their channel. Spec gap (multi-proxy.md): task m's gradient flows back through the other columns'
activations (full backprop); only the update is masked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn


def channel_groups(channels: int, tasks: int, what: str = "output") -> list[range]:
    """``channels`` split into ``tasks`` contiguous groups whose sizes differ by at most one."""
    if channels < tasks:
        raise ValueError(f"a layer with {channels} {what} channels cannot be split among {tasks} tasks")
    bounds = [round(i * channels / tasks) for i in range(tasks + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(tasks)]


def split_weight_masks(
    module: nn.Module, tasks: Sequence[str]
) -> dict[str, dict[nn.Parameter, torch.Tensor]]:
    """Per task, a 0/1 mask for each parameter of ``module`` (conv / linear weights, norm scales, biases:
    dim 0 is the output channel) selecting the rows of that task's channel group."""
    masks: dict[str, dict[nn.Parameter, torch.Tensor]] = {name: {} for name in tasks}
    for param in module.parameters():
        for name, group in zip(tasks, channel_groups(param.shape[0], len(tasks))):
            mask = torch.zeros_like(param)
            mask[group.start : group.stop] = 1
            masks[name][param] = mask
    return masks


def split_activation_masks(
    layers: Sequence[nn.Module], heads: Mapping[str, nn.Linear], tasks: Sequence[str], positions: int
) -> dict[str, dict[nn.Parameter, torch.Tensor]]:
    """Split-activations (§4.4, "split-brain"): M columns, each 1/M of every layer, with no weights between them.

    The network is M separately trained narrow networks side by side: a grouped convolution (groups = M) in
    every layer but the first (which reads the image), each task's head reading only its own column of the
    flattened top features (``positions`` spatial cells per channel). Task m's mask selects its column's rows and,
    after the first layer, only the inputs from its own column; the cross-column blocks are in no task's mask,
    so (zeroed by :func:`zero_cross_weights`) they stay exactly zero: the forward equals the grouped one.
    """
    masks: dict[str, dict[nn.Parameter, torch.Tensor]] = {name: {} for name in tasks}
    convs = [m for layer in layers for m in layer.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for index, conv in enumerate(convs):
        outs = channel_groups(conv.weight.shape[0], len(tasks))
        # The first layer reads the image (all of it, in every column); later ones only their own column.
        ins = (
            [range(conv.weight.shape[1])] * len(tasks)
            if index == 0
            else channel_groups(conv.weight.shape[1], len(tasks), "input")
        )
        for name, out_group, in_group in zip(tasks, outs, ins):
            weight = torch.zeros_like(conv.weight)
            columns = slice(in_group.start, in_group.stop)
            weight[out_group.start : out_group.stop, columns] = 1
            masks[name][conv.weight] = weight
            if conv.bias is not None:
                bias = torch.zeros_like(conv.bias)
                bias[out_group.start : out_group.stop] = 1
                masks[name][conv.bias] = bias
    channels = convs[-1].weight.shape[0]
    for name, group in zip(tasks, channel_groups(channels, len(tasks))):
        head = heads[name]
        weight = torch.zeros_like(head.weight)
        weight[:, group.start * positions : group.stop * positions] = 1  # flatten is channel-major
        masks[name][head.weight] = weight
        if head.bias is not None:
            masks[name][head.bias] = torch.ones_like(head.bias)
    return masks


@torch.no_grad()
def zero_cross_weights(masks: Mapping[str, Mapping[nn.Parameter, torch.Tensor]]) -> None:
    """Set every weight that no task's mask covers to zero (split-activations' missing cross-column weights).

    A weight whose row keeps only 1/M of its inputs is scaled by sqrt(M): the init's variance was set for the
    full fan-in, and a network without normalisation layers would otherwise shrink its signal ~M-fold per layer
    (M separately initialised 1/M-wide networks have the full per-input variance).
    """
    union: dict[nn.Parameter, torch.Tensor] = {}
    for per_task in masks.values():
        for param, mask in per_task.items():
            union[param] = torch.maximum(union[param], mask) if param in union else mask
    for param, mask in union.items():
        param.mul_(mask)
        if param.dim() > 1:
            kept = (
                mask.flatten(1).sum(1).clamp(min=1) / mask[0].numel()
            )  # the fraction of inputs each row keeps
            param.mul_(kept.rsqrt().view(-1, *([1] * (param.dim() - 1))))
