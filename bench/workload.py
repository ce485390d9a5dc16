"""How much the suite sends to the naive server and the service, sized to the machine.

The full workload (8, 16 and 64 photos at 1, 8 and 32 clients, 64 small pictures at 32) takes
about 11 minutes of the suite on a machine whose model does ~19 tiles a second (OpenVINO bf16 on
AMX); a 2-core AVX2-only machine runs the model five to six times slower (FP32, about 3 tiles a
second as served), where the same images would take the suite past 50 minutes. `make bench` must
finish in under 30 minutes on the slowest machine, so the workload is planned from the bare
model's rate, measured first: the full one where it fits the time left, otherwise fewer images
per concurrency (never fewer than half the clients), and the small pictures left out when fewer
of them than clients would fit. The plan goes into the report
(`workload`), so a run on a slow machine says what it measured with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SUITE_BUDGET_S = 25 * 60.0  # the whole suite, with margin under the 30 minutes it must finish in
# what the servers keep of the bare model's tiles per second, to predict how long their phases take
# (the service kept 0.67-0.84 in runs 17-20; the naive server about as much)
SERVED_SHARE = 0.7
# what the service phases spend besides the images: two cold starts, warm-ups, the submit-latency
# phase, the bare model again after the service, the shutdowns (seconds, measured 2-3 minutes at 19
# tiles/s; more where the model is slower, which the scan's and warm-ups' tiles below account for)
FIXED_S = 150.0
WARM_UP_IMAGES = 2  # one photo through each server before it is measured


FULL_PHOTOS = {1: 8, 8: 16, 32: 64}  # photos per concurrency, where they fit
FULL_SMALL = 64  # small pictures at the highest concurrency, where they fit
SMALL_LEAST = 32  # fewer small pictures than the 32 clients would not keep them all busy


@dataclass(frozen=True)
class Workload:
    """Images sent to each server: photos per concurrency, small pictures at the highest (0: the
    small-picture phase is left out), and how the plan was made."""

    photos: dict[int, int]
    small: int
    planned_for_tiles_per_s: float
    seconds_left: float
    predicted_s: float
    notes: list[str] = field(default_factory=list)  # why it is smaller than the full workload; empty when it is not

    def report(self) -> dict[str, Any]:
        return {**asdict(self), "photos": {str(c): n for c, n in self.photos.items()}}

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> Workload:
        return cls(**{**report, "photos": {int(c): n for c, n in report["photos"].items()}})

    def describe(self) -> str:
        photos = ", ".join(f"{n} at c={c}" for c, n in self.photos.items())
        notes = "".join(f"; {note}" for note in self.notes)
        return (
            f"photos {photos}; {self.small or 'no'} small pictures; predicted {self.predicted_s / 60:.0f} of the "
            f"{self.seconds_left / 60:.0f} minutes left{notes}"
        )


def least_photos(concurrency: int) -> int:
    """The fewest photos a concurrency is measured with: one for every second client, and at
    least two. With 16 photos from 32 clients only 16 are active, but the service still has four
    times the jobs it runs at once (4 per Segmenter replica) queued, so it stays saturated until
    the last few drain."""
    return max(2, concurrency // 2)


def images_seconds(photos: dict[int, int], small: int, photo_tiles: float, small_tiles: float, tiles_per_s: float) -> float:
    """Seconds both servers take for these images when they run at `SERVED_SHARE` of `tiles_per_s`."""
    tiles = sum(photos.values()) * photo_tiles + small * small_tiles
    return 2 * tiles / (SERVED_SHARE * tiles_per_s)


def plan_workload(tiles_per_s: float, seconds_left: float, photo_tiles: float, small_tiles: float, scan_tiles: int) -> Workload:
    """The largest workload, up to the full one, that the service phases can run in `seconds_left`.

    `tiles_per_s` is the bare model on the photos' own tiles, `photo_tiles` and `small_tiles`
    the tiles of one photo and one small picture (every pass of the scale search), `scan_tiles`
    the large scan's."""
    if tiles_per_s <= 0:
        raise ValueError(f"The model's rate must be positive, got {tiles_per_s}.")
    fixed = FIXED_S + (scan_tiles + WARM_UP_IMAGES * photo_tiles) / (SERVED_SHARE * tiles_per_s)
    full = images_seconds(FULL_PHOTOS, FULL_SMALL, photo_tiles, small_tiles, tiles_per_s)
    photos, small, notes = dict(FULL_PHOTOS), FULL_SMALL, []
    if fixed + full > seconds_left:
        scale = max(0.0, seconds_left - fixed) / full
        photos = {c: max(least_photos(c), round(n * scale)) for c, n in FULL_PHOTOS.items()}
        small = round(FULL_SMALL * scale)
        notes.append(f"the full workload would not fit: images scaled by {scale:.2f}")
        if small < SMALL_LEAST:
            small = 0
            notes.append("small pictures left out (fewer than the clients would fit)")
    predicted = fixed + images_seconds(photos, small, photo_tiles, small_tiles, tiles_per_s)
    return Workload(photos, small, tiles_per_s, seconds_left, predicted, notes)


def tiles_per_image(sizes: tuple[tuple[int, int], ...], model: Path) -> list[list[tuple[int, int]]]:
    """For each picture size, the shapes of the tiles the service cuts from it with `model`'s
    settings: every pass of the scale search, planned as the Tiler plans them."""
    from pipelines.model import read_config
    from pipelines.resolution import segmentation_plans

    config = read_config(model)
    info = {name: getattr(config, name) for name in ("max_short_side", "scales", "tile_size", "tile_overlap", "output_stride")}
    return [[tile.shape for plan in segmentation_plans(*size, info)[1] for tile in plan.tiles] for size in sizes]


def mean_tiles(sizes: tuple[tuple[int, int], ...], model: Path) -> float:
    """Tiles per picture, averaged over `sizes` (the bench cycles through them evenly)."""
    per_image = tiles_per_image(sizes, model)
    return sum(len(shapes) for shapes in per_image) / len(per_image)
