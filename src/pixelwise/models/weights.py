"""Loading user-supplied weights, safely and without network access.

Weights come from a file path only: ``.safetensors`` (never executes code) or a torchvision ``.pth``/``.pt`` read
with ``torch.load(weights_only=True)`` (refuses pickled code). Classifier weights are convolutionalised
(Long §3.1) and a 3-channel first conv is adapted to 1-channel input by averaging (peers-and-users #6).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn


class WeightsError(ValueError):
    """A weights file that cannot be used; the message names the file and the reason."""


# Boilerplate lines of torch's weights-only refusal; the line that is left says what was refused.
_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def _refusal_reason(err: Exception) -> str:
    """One line saying why ``torch.load(weights_only=True)`` refused a file.

    torch's own message spans paragraphs and suggests retrying with ``weights_only=False``, which is exactly
    what must not be done with an untrusted file; keep only the specific reason (e.g. the blocked global).
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    specific = [line for line in lines if not line.startswith(_TORCH_BOILERPLATE)]
    return (specific or lines or [type(err).__name__])[0]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors or weights-only torch file; unwraps ``{"state_dict": ...}``/``{"model": ...}``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:  # safetensors raises several error types for bad headers
            raise WeightsError(f"{path}: not a valid safetensors file ({_refusal_reason(err)})") from err
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": noise next to the one-line error below
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightsError(
            f"{path}: refused to load. Only plain tensor state dicts are accepted (torch.load weights_only=True); "
            f"pickled code is never executed. Convert the file to .safetensors. "
            f"({type(err).__name__}: {_refusal_reason(err)})"
        ) from err
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a dict of tensors (a state dict)")
    return state


def convolutionalize_vgg(state: dict[str, torch.Tensor], fc_kernel: int = 7) -> dict[str, torch.Tensor]:
    """Map torchvision VGG ``classifier.0/3`` (fc6/fc7) to the backbone's 7x7 / 1x1 convs (Long §3.1).

    fc6 weights 4096 x 25088 are the same numbers as a 4096 x 512 x 7 x 7 conv over pool5.
    """
    out = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    for src, dst in (("classifier.0", "fc.fc6"), ("classifier.3", "fc.fc7")):
        if f"{src}.weight" in state:
            weight = state[f"{src}.weight"]
            kernel = fc_kernel if dst.endswith("fc6") else 1
            out[f"{dst}.weight"] = weight.reshape(weight.shape[0], -1, kernel, kernel)
            out[f"{dst}.bias"] = state[f"{src}.bias"]
    return out


def adapt_input_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """First-conv weights for ``in_channels`` inputs: the channel mean tiled and scaled to keep the weights' sum.

    Keeping the sum keeps the response to an input whose channels are equal: for grey input (``in_channels=1``)
    the kernel is the sum over RGB, so a grey pixel x gives what (x, x, x) gave the RGB network (timm does the same).
    """
    if weight.shape[1] == in_channels:
        return weight
    mean = weight.mean(dim=1, keepdim=True)
    return mean.repeat(1, in_channels, 1, 1) * (weight.shape[1] / in_channels)


CLASSIFIER_PREFIXES = ("fc.", "classifier.")  # a torchvision classifier: expected in the file, never loaded
MIN_LOADED = 0.9  # below this fraction of the backbone's tensors loaded, a load is refused unless allowed


def load_backbone_weights(backbone: nn.Module, path: str | Path, allow_partial: bool = False) -> list[str]:
    """Load a torchvision-style state dict into ``backbone``; returns the backbone keys left at random init.

    Prints what was loaded, what was left at its initial value and what in the file was not used. Refused (one
    line, naming the file): a shape mismatch, a file that matches nothing, and, unless ``allow_partial``, a file
    with backbone tensors this backbone lacks (e.g. a ResNet-34 into a ResNet-18, whose shared names all fit) or
    one that leaves more than a tenth of the backbone at its initial value: silently training from partly random
    weights wastes a CPU-day.
    """
    state = read_state_dict(path)
    if any(k.startswith("classifier.") for k in state):
        state = convolutionalize_vgg(
            state, fc_kernel=getattr(backbone, "fc", [nn.Conv2d(1, 1, 7)])[0].kernel_size[0]
        )
    own = backbone.state_dict()
    usable: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key not in own:
            continue
        if value.dim() == 4 and own[key].dim() == 4 and value.shape[1] != own[key].shape[1]:
            value = adapt_input_channels(value, own[key].shape[1])
        if value.shape != own[key].shape:
            raise WeightsError(
                f"{path}: {key} has shape {tuple(value.shape)}, the backbone expects {tuple(own[key].shape)}"
            )
        usable[key] = value
    if not usable:
        raise WeightsError(
            f"{path}: no tensor matches the backbone's parameter names (is it the right architecture?)"
        )
    missing = sorted(set(own) - set(usable))
    unused = sorted(k for k in state if k not in own and not k.startswith(CLASSIFIER_PREFIXES))
    print(
        f"{path}: loaded {len(usable)} of the backbone's {len(own)} tensors; {len(missing)} left at their initial "
        f"value; {len(unused)} in the file not used (besides a classifier)"
    )
    if not allow_partial and (unused or len(usable) < MIN_LOADED * len(own)):
        detail = (
            f"the file holds {', '.join(unused[:3])}, ... that this backbone lacks"
            if unused
            else (
                f"{len(missing)} of {len(own)} backbone tensors ({', '.join(missing[:3])}, ...) would stay random"
            )
        )
        raise WeightsError(
            f"{path}: {detail}; is it another architecture? (--allow-partial loads what fits anyway)"
        )
    backbone.load_state_dict(usable, strict=False)
    return missing
