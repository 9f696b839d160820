"""Label maps: the ids a dataset's label files hold -> class indices (or 255, ignored), and back again.

One :class:`LabelMap` serves ``--label-map FILE`` (YAML/JSON ``source id: class index or 255``) and the formats
whose files hold their own ids (Cityscapes labelIds -> trainIds, ADE20K's 0 = "other"). Every value a label file
holds must be in the map: an id the map does not name is an error, not silently a class of the same number.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from pixelwise.data.validation import DatasetError

IGNORE = 255


@dataclass(frozen=True)
class LabelMap:
    """``mapping``: source id -> class index or 255; ``source``: where it came from (named in errors)."""

    mapping: Mapping[int, int]
    source: str

    def apply(self, label: np.ndarray, path: Path) -> np.ndarray:
        """``label``'s ids mapped to classes; ids the map does not name are refused with ``path`` named."""
        values, counts = np.unique(label, return_counts=True)
        mapping = {IGNORE: IGNORE, **self.mapping}  # a void 255 stays void unless the map says otherwise
        unknown = [(int(v), int(c)) for v, c in zip(values, counts) if int(v) not in mapping]
        if unknown:
            shown = ", ".join(f"{v} ({c} px)" for v, c in unknown[:8])
            raise DatasetError(
                f"{path}: label id(s) {shown} not in the label map {self.source}; add each to the map "
                f"(as a class index, or 255 to ignore it)"
            )
        lut = np.full(int(values.max()) + 1, IGNORE, dtype=np.uint8)
        for source, target in mapping.items():
            if 0 <= source < len(lut):
                lut[source] = target
        return lut[label]

    def source_ids(self, num_classes: int) -> tuple[int, ...]:
        """Each class's dataset id (the smallest source id mapped to it; 255 for a class nothing maps to)."""
        ids = [IGNORE] * num_classes
        for source in sorted(self.mapping, reverse=True):
            target = self.mapping[source]
            if target != IGNORE and source >= 0:
                ids[target] = source
        return tuple(ids)

    def with_void(self, void: int) -> LabelMap:
        """The map with ``void`` (--ignore-index) -> 255 added, unless the map already names that id."""
        if void == IGNORE or void in self.mapping:
            return self
        return LabelMap({**self.mapping, void: IGNORE}, self.source)


class _PairsLoader(yaml.SafeLoader):
    """Mappings load as lists of (key, value) pairs: PyYAML keeps the last of two equal keys without a word."""


_PairsLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    lambda loader, node: _Pairs(loader.construct_pairs(node, deep=True)),
)


class _Pairs(list):
    """The (key, value) pairs of one mapping, in file order."""


def read_label_map(path: Path, num_classes: int) -> LabelMap:
    """Read ``--label-map FILE`` (YAML or JSON ``source id: class index or 255``), checked against the classes.

    Two entries for one id (a repeated key, or ``7`` and ``"7"``) collide and are refused, as are class indices
    outside 0..num_classes-1 other than 255.
    """
    pairs = _load_pairs(path)
    mapping: dict[int, int] = {}
    spelled: dict[int, object] = {}
    for key, value in pairs:
        source = _as_int(key, path, "source id")
        if source in mapping:
            raise DatasetError(
                f"{path}: source id {source} is given twice (as {spelled[source]!r} and {key!r}); the ids "
                f"collide, keep one entry per id"
            )
        target = _as_int(value, path, f"class of id {source}")
        if not (0 <= target < num_classes or target == IGNORE):
            raise DatasetError(
                f"{path}: id {source} maps to {target}, but there are {num_classes} classes; use a class index "
                f"0..{num_classes - 1} or 255 (ignore)"
            )
        mapping[source], spelled[source] = target, key
    if not mapping:
        raise DatasetError(f"{path}: label map is empty; write one 'source id: class index' entry per id")
    return LabelMap(mapping, str(path))


def _load_pairs(path: Path) -> list[tuple[object, object]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read label map ({exc}); check the --label-map path") from exc
    try:
        if path.suffix.lower() == ".json":
            loaded = json.loads(text, object_pairs_hook=_Pairs)
        else:
            loaded = yaml.load(text, Loader=_PairsLoader)  # noqa: S506 (a SafeLoader subclass)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        detail = str(exc).splitlines()[0]
        raise DatasetError(f"{path}: label map is not valid YAML/JSON ({detail}); fix the file") from exc
    if not isinstance(loaded, _Pairs):
        raise DatasetError(f"{path}: a label map must be a mapping 'source id: class index or 255'")
    return list(loaded)


def _as_int(value: object, path: Path, what: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, str))
        or not str(value).strip().lstrip("-").isdigit()
    ):
        raise DatasetError(f"{path}: {what} {value!r} is not a whole number; write 'source id: class index'")
    return int(str(value).strip())
