"""The lithology class table (ids, slugs, names, overlay colours), read from `classes.json`.

`classes.json` is the project's copy of the canonical table; id 0 is background and is never
tinted in overlays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

CLASS_TABLE_PATH = Path(__file__).with_name("classes.json")
BACKGROUND_ID = 0


@dataclass(frozen=True)
class LithologyClass:
    """One class: its id, name and overlay colour."""

    id: int
    slug: str
    name: str
    color: tuple[int, int, int]


def colour_triple(values: Any) -> tuple[int, int, int]:
    """An (r, g, b) of ints in 0-255 from a list of three numbers, else ValueError."""
    red, green, blue = (int(v) for v in values)
    return red, green, blue


@dataclass(frozen=True)
class ClassTable:
    """The classes a model predicts, by id (0 is background): names, colours, the palette."""

    classes: tuple[LithologyClass, ...]

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> ClassTable:
        classes = tuple(
            LithologyClass(int(r["id"]), str(r["slug"]), str(r["name"]), colour_triple(r["color"]))
            for r in sorted(records, key=lambda r: int(r["id"]))
        )
        if [c.id for c in classes] != list(range(len(classes))):
            raise ValueError("Class ids must be 0..N-1 without gaps.")
        return cls(classes)

    def to_records(self) -> list[dict[str, Any]]:
        return [{"id": c.id, "slug": c.slug, "name": c.name, "color": list(c.color)} for c in self.classes]

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def rock_classes(self) -> tuple[LithologyClass, ...]:
        return tuple(c for c in self.classes if c.id != BACKGROUND_ID)

    @property
    def palette(self) -> np.ndarray:
        """(N, 3) uint8 colours indexed by class id."""
        return np.array([c.color for c in self.classes], dtype=np.uint8)

    def class_map(self) -> dict[str, str]:
        """`{"0": "background", "1": "sandstone", ...}` as in Roboflow's `class_map`."""
        return {str(c.id): c.name for c in self.classes}


@lru_cache(maxsize=1)
def default_class_table() -> ClassTable:
    """The class table shipped with the project (pipelines/classes.json)."""
    return ClassTable.from_records(json.loads(CLASS_TABLE_PATH.read_text())["classes"])
