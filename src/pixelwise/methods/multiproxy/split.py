"""Split-weights (Larsson §4.4): disjoint weights for the tasks of one network, trained online.

Every layer's output channels are partitioned among the M tasks (contiguous groups, sizes within one), and all
weights *into* group m, from any input column, belong to task m: task m's loss updates only those, so no weight
gets gradients from two tasks, while every column still reads the others' activations. BatchNorm's scale and
shift follow their channel. Spec gap (multi-proxy.md): task m's gradient flows back through the other columns'
activations (full backprop); only the update is masked.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def channel_groups(channels: int, tasks: int) -> list[range]:
    """``channels`` split into ``tasks`` contiguous groups whose sizes differ by at most one."""
    if channels < tasks:
        raise ValueError(f"a layer with {channels} output channels cannot be split among {tasks} tasks")
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
