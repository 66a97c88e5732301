"""What one step is asked to do: a name, a version, named input paths and resolved options.

Contract: a :class:`StepSpec` is immutable and its options are JSON (checked when it is
made), so its key (:func:`reelforge.pipeline.digest.step_key`) and its JSON form
(:meth:`StepSpec.to_json`, :meth:`StepSpec.from_json`) are defined for every spec. Options
are *resolved*: a default left for the step to pick would let two runs of one spec differ.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


@dataclass(frozen=True)
class StepSpec:
    """One step's work: ``name`` (a registered step), ``version`` (bumped when the step's
    output for the same inputs changes), ``inputs`` (named files or folders) and
    ``options`` (JSON-serialisable, already resolved)."""

    name: str
    version: str
    inputs: Mapping[str, Path] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not set(self.name) <= NAME_CHARS:
            raise ValueError(f"step name must be lower-case letters, digits, - _ . : {self.name!r}")
        if not isinstance(self.version, str) or not self.version:
            raise ValueError(f"step {self.name}: version must be a non-empty string")
        inputs = {str(k): Path(v) for k, v in dict(self.inputs).items()}
        try:  # JSON round trip: tuples become lists, so equal options give equal keys
            options = json.loads(json.dumps(dict(self.options), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"step {self.name}: options must be plain JSON ({exc})") from None
        object.__setattr__(self, "inputs", MappingProxyType(inputs))
        object.__setattr__(self, "options", MappingProxyType(options))

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "inputs": {k: str(v) for k, v in sorted(self.inputs.items())},
            "options": dict(self.options),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StepSpec:
        return cls(
            name=data["name"],
            version=data["version"],
            inputs={k: Path(v) for k, v in data.get("inputs", {}).items()},
            options=data.get("options", {}),
        )

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_json(), sort_keys=True))
