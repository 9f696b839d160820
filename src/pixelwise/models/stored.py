"""The one way a model's config is stored in, and rebuilt from, a checkpoint's JSON metadata."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar

Config = TypeVar("Config", bound="StoredConfig")


class StoredConfig:
    """Mixin for the frozen dataclass that rebuilds a model: ``to_dict`` tags it with the model's ``KIND`` (what
    eval / predict / colorize / ``--init-from`` dispatch on); ``from_dict`` ignores keys it does not know, so a
    checkpoint written by a newer pixelwise with extra fields still loads."""

    KIND: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.KIND, **dataclasses.asdict(self)}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[Config], values: dict[str, Any]) -> Config:
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in values.items() if k in known})
