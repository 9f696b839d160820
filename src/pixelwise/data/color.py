"""Colour spaces for colorization (Larsson thesis §2.3.1): lightness, hue/chroma bicone and CIE Lab.

All functions work on float tensors [..., 3, H, W] (channel dim -3) in [0, 1] RGB, on any device, and are
differentiable where the maths is.
"""

from __future__ import annotations

import torch

# sRGB (D65) -> XYZ; the rows of the inverse give XYZ -> linear sRGB.
_RGB_TO_XYZ = torch.tensor(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_WHITE_D65 = torch.tensor([0.950456, 1.0, 1.088754])


def lightness(rgb: torch.Tensor) -> torch.Tensor:
    """L = (R + G + B) / 3, the network's one-channel input (§2.3.1). Keeps the channel dim (size 1)."""
    return rgb.mean(dim=-3, keepdim=True)


def rgb_to_hcl(rgb: torch.Tensor) -> torch.Tensor:
    """RGB -> (hue in [0,1), chroma = max - min, lightness = mean) stacked on dim -3 (the bicone, §2.3.1).

    Hue is HSV hue; it is undefined for grey pixels and set to 0 there (their hue loss is weighted by C = 0).
    """
    r, g, b = rgb.unbind(dim=-3)
    maxc, _ = rgb.max(dim=-3)
    minc, _ = rgb.min(dim=-3)
    chroma = maxc - minc
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(
        maxc == r, ((g - b) / safe) % 6, torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    hue = torch.where(chroma > 0, hue / 6, torch.zeros_like(hue)) % 1.0
    return torch.stack([hue, chroma, (r + g + b) / 3], dim=-3)


def hcl_to_rgb(hcl: torch.Tensor) -> torch.Tensor:
    """(hue, chroma, lightness) -> RGB, the exact inverse of :func:`rgb_to_hcl`, clipped to [0, 1].

    The thesis converts via HSV with V = L + C/2, S = C/V (§2.3.1), which is exact only for L = (max+min)/2.
    With L = mean(R,G,B) the exact inverse is: the channels are min + C * (1, f, 0) in hue-sector order, where
    f = 1 - |h6 mod 2 - 1| is the middle channel's fraction, and min = L - C (1 + f) / 3.
    """
    hue, chroma, light = hcl.unbind(dim=-3)
    h6 = (hue % 1.0) * 6
    middle = 1 - (h6 % 2 - 1).abs()
    low = light - chroma * (1 + middle) / 3
    one, zero = torch.ones_like(middle), torch.zeros_like(middle)
    patterns = [(one, middle, zero), (middle, one, zero), (zero, one, middle), (zero, middle, one),
                (middle, zero, one), (one, zero, middle)]  # fmt: skip
    sector = h6.floor().long() % 6
    channels = []
    for channel in range(3):
        fraction = zero
        for index, pattern in enumerate(patterns):
            fraction = torch.where(sector == index, pattern[channel], fraction)
        channels.append(low + chroma * fraction)
    return torch.stack(channels, dim=-3).clamp(0, 1)


def _linearise(rgb: torch.Tensor) -> torch.Tensor:
    return torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def _gamma(linear: torch.Tensor) -> torch.Tensor:
    linear = linear.clamp(min=0)
    return torch.where(
        linear > 0.0031308, 1.055 * linear.clamp(min=1e-12) ** (1 / 2.4) - 0.055, 12.92 * linear
    )


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0,1] -> CIE Lab (L in [0,100], a/b roughly [-110, 110]), D65 white (matches skimage)."""
    matrix = _RGB_TO_XYZ.to(rgb)
    xyz = torch.einsum("ij,...jhw->...ihw", matrix, _linearise(rgb)) / _WHITE_D65.to(rgb).view(3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp(min=1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    fx, fy, fz = f.unbind(dim=-3)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE Lab -> sRGB in [0, 1] (out-of-gamut colours clipped)."""
    light, a, b = lab.unbind(dim=-3)
    fy = (light + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], dim=-3)
    xyz = torch.where(f > 0.206893, f**3, (f - 16 / 116) / 7.787) * _WHITE_D65.to(lab).view(3, 1, 1)
    linear = torch.einsum("ij,...jhw->...ihw", torch.linalg.inv(_RGB_TO_XYZ).to(lab), xyz)
    return _gamma(linear).clamp(0, 1)
