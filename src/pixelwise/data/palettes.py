"""Well-known label palettes, free of other imports so that label decoding can name colours by class."""

from __future__ import annotations

RGB = tuple[int, int, int]


def voc_palette(n: int = 256) -> tuple[RGB, ...]:
    """The PASCAL VOC colour map: class i's bits interleaved into R, G, B (0 = black background, 255 = void)."""
    colours = []
    for i in range(n):
        r = g = b = 0
        c = i
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours.append((r, g, b))
    return tuple(colours)


VOC_VOID_COLOUR: RGB = (224, 224, 192)  # voc_palette()[255]: the object-boundary band, ignored


def palette_lookup(palette: tuple[RGB, ...] | list[RGB], void: RGB | None = None) -> dict[RGB, int]:
    """colour -> class index for converting colour-coded labels; the first class wins a repeated colour."""
    lookup: dict[RGB, int] = {}
    for index, colour in enumerate(palette):
        lookup.setdefault(tuple(int(v) for v in colour), index)  # type: ignore[arg-type]
    if void is not None:
        lookup.setdefault(void, 255)
    return lookup
