"""The content gate: is there drill core in this picture at all?

Runs before any full-resolution work. A few 224 × 224 views of the picture (the whole picture
squashed, plus square crops along the long axis of a long scan) are embedded with the
ImageNet-trained EfficientNet-Lite0 (the offline weights of `pipelines.pretrained`); the picture's
core score is the best view's mean cosine similarity to its `k` nearest neighbours in a bank of
embeddings of real core photographs. A picture scoring below the threshold is rejected.

Why a reference bank and not the segmentation model: the segmentation model has never seen
anything but cores and trays, so it calls grass, brick walls and star fields "rock" with
confidence; the ImageNet embedding knows what those are. The bank (`gate.npz`, a few hundred
float16 vectors) lives in the checkpoint directory next to the model it gates; a checkpoint
without one is served ungated.

    python -m pipelines.gate build --images ../shared/data/real_cores/images --out models/lithoseg-default
    python -m pipelines.gate evaluate --model models/lithoseg-default \\
        --cores ../shared/data/real_cores/images --not-cores ../shared/data/not_cores --edits
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from pipelines.checkpoint_files import GATE_FILE, IMAGENET_MEAN, IMAGENET_STD
from pipelines.decode import list_images, read_image_file
from pipelines.exposure import grey_levels

GATE_SIZE = 224
BANK_FILE = GATE_FILE
NEIGHBOURS = 3
MAX_VIEWS = 5  # the whole picture + up to four crops along a long scan
GRID_CELLS = (2, 3)  # the bank's close-ups: quadrants, and a 3 × 3 grid
MIN_DETAIL = 4.0  # grey-level standard deviation below which a view is blank (the flattest cell of a core photo: 10.8)
# mean |grey level - its 5 x 5 box mean| below which a view is blank however much it varies overall:
# smooth gradients, linear or radial, even JPEG-compressed or with noise of sd 2, measure 0.01-0.56;
# the least detailed view of the 26 core photos in the project's data (labelled and from another
# lab) 1.53 (cc05, a narrow slabbed core), the next 3.0
MIN_LOCAL_DETAIL = 1.0
_MEAN = np.array(IMAGENET_MEAN, np.float32)
_STD = np.array(IMAGENET_STD, np.float32)


def _resize(image: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((GATE_SIZE, GATE_SIZE), Image.Resampling.BILINEAR))


def gate_views(image: np.ndarray, grid: bool = False) -> list[np.ndarray]:
    """224 × 224 RGB views of an (H, W, 3) uint8 image: the whole of it and, when one side is more
    than 1.5 times the other, up to four square crops spread along the long side (a squashed long
    scan looks like nothing). `grid` adds the four quadrants and the nine cells of a 3 × 3 grid
    (used to build a bank that also knows close-ups of a few pieces). A large image is first
    subsampled by striding, so the cost does not grow with it. Blank views (a single colour, under
    `MIN_DETAIL`) and featureless ones (a smooth gradient: under `MIN_LOCAL_DETAIL`) are left out:
    there is no core in them, and a picture without a view scores 0, so it is rejected."""
    step = max(1, math.ceil(max(image.shape[:2]) / (4 * GATE_SIZE)))
    small = image[::step, ::step]
    h, w = small.shape[:2]
    views = [small]
    side, long = min(h, w), max(h, w)
    if long > 1.5 * side:
        n = min(MAX_VIEWS - 1, math.ceil(long / side))
        for i in range(n):
            o = round(i * (long - side) / (n - 1))
            views.append(small[o : o + side] if h > w else small[:, o : o + side])
    if grid:
        for n in GRID_CELLS:
            if h >= n and w >= n:
                views += [small[i * h // n : (i + 1) * h // n, j * w // n : (j + 1) * w // n] for i in range(n) for j in range(n)]
    resized = (_resize(np.ascontiguousarray(v)) for v in views)
    return [v for v in resized if not is_blank(v)]


def local_detail(view: np.ndarray) -> float:
    """Mean absolute difference between a view's grey levels and their 5 x 5 box mean: the texture
    a smooth gradient lacks, whatever its overall contrast."""
    grey = grey_levels(view)
    blurred = np.asarray(Image.fromarray(np.clip(grey + 0.5, 0, 255).astype(np.uint8)).filter(ImageFilter.BoxBlur(2)), np.float32)
    return float(np.abs(grey - blurred).mean())


def is_blank(view: np.ndarray) -> bool:
    """A single colour, or a smooth gradient: nothing a core photo could show."""
    return float(grey_levels(view).std()) < MIN_DETAIL or local_detail(view) < MIN_LOCAL_DETAIL


class GateEncoder:
    """ImageNet EfficientNet-Lite0 without its classifier: (N, 224, 224, 3) uint8 → (N, 1280) unit vectors."""

    def __init__(self, device: str | object = "cpu") -> None:
        import timm  # torch is imported here, not at module level: the Tiler cuts views without it
        import torch

        from pipelines.pretrained import efficientnet_lite_state_dict

        self.device = torch.device(str(device))
        network = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
        weights = {k: v for k, v in efficientnet_lite_state_dict("tf_efficientnet_lite0").items() if not k.startswith("classifier.")}
        network.load_state_dict(weights)
        self.network = network.eval().to(self.device)

    def embed(self, views: list[np.ndarray]) -> np.ndarray:
        import torch

        if not views:
            return np.zeros((0, int(self.network.num_features)), np.float32)  # type: ignore[arg-type]  # timm sets it to an int
        batch = (np.stack(views).astype(np.float32) / 255.0 - _MEAN) / _STD
        with torch.inference_mode():
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).to(self.device)
            features = self.network(x).float().cpu().numpy()
        return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


@dataclass
class GateBank:
    """Reference embeddings of core views and the threshold a picture's core score must reach."""

    embeddings: np.ndarray  # (N, D) float16 unit vectors
    sources: np.ndarray  # (N,) the photo each came from
    threshold: float

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / BANK_FILE
        np.savez_compressed(path, embeddings=self.embeddings.astype(np.float16), sources=self.sources, threshold=np.float32(self.threshold))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> GateBank | None:
        path = Path(directory) / BANK_FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return cls(data["embeddings"].astype(np.float32), data["sources"], float(data["threshold"]))

    @staticmethod
    def carry(source: str | Path, target: str | Path) -> bool:
        """Copy `source`'s bank into checkpoint directory `target`, if it has one. The bank holds
        embeddings of the fixed ImageNet encoder, not of the checkpoint's network, so it stays valid
        for a network fine-tuned from, or averaged with, `source`'s."""
        path = Path(source) / BANK_FILE
        if not path.is_file():
            return False
        shutil.copyfile(path, Path(target) / BANK_FILE)
        return True

    def score(self, embeddings: np.ndarray, exclude: str | None = None) -> float:
        """The best view's mean similarity to its nearest bank entries (optionally leaving one photo
        out); 0 for a picture without a view (a blank one)."""
        if len(embeddings) == 0:
            return 0.0
        bank = self.embeddings if exclude is None else self.embeddings[self.sources != exclude]
        similarities = embeddings @ bank.T.astype(np.float32)
        k = min(NEIGHBOURS, similarities.shape[1])
        nearest = -np.sort(-similarities, axis=1)[:, :k]
        return float(nearest.mean(axis=1).max())


REJECTION_REASON = "not_a_core_photo"  # a rejected job's `rejection_reason`


def verdict(score: float | None, threshold: float) -> dict[str, Any]:
    """What a job's result says of the gate: `rejected`, `rejection_reason` and `core_score`
    (None where the gate did not run: turned off, or a checkpoint without a bank)."""
    if score is None:
        return {"rejected": False, "rejection_reason": None, "core_score": None}
    rejected = score < threshold
    return {"rejected": rejected, "rejection_reason": REJECTION_REASON if rejected else None, "core_score": round(score, 4)}


def build_bank(encoder: GateEncoder, folder: str | Path, threshold: float) -> GateBank:
    """A gate bank from a folder of core photos, embedded by `encoder`."""
    vectors, sources = [], []
    for path in list_images(folder):
        image = read_image_file(path)  # and turned a quarter: core boxes are photographed either way round
        embedded = encoder.embed(gate_views(image, grid=True) + gate_views(np.ascontiguousarray(np.rot90(image)), grid=True))
        vectors.append(embedded)
        sources += [path.stem] * len(embedded)
    return GateBank(np.concatenate(vectors).astype(np.float16), np.array(sources), threshold)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    import io

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _middle(image: np.ndarray, fraction: float) -> np.ndarray:
    h, w = image.shape[:2]
    dy, dx = round(h * (1 - fraction) / 2), round(w * (1 - fraction) / 2)
    return image[dy : h - dy, dx : w - dx]


def _strip(image: np.ndarray) -> np.ndarray:
    """A sixth of the short side, along the long one: one core column, as a slab scan shows it."""
    h, w = image.shape[:2]
    return image[:, w // 2 - w // 12 : w // 2 + w // 12] if h > w else image[h // 2 - h // 12 : h // 2 + h // 12]


EDITS = {  # what a user's core photo may look like that ours do not: the gate should still accept it
    "middle half (close-up)": lambda a: _middle(a, 0.5),
    "middle quarter (close-up)": lambda a: _middle(a, 0.25),
    "one column strip": _strip,
    "turned 30 degrees": lambda a: np.asarray(Image.fromarray(a).rotate(30, expand=True)),
    "greyscale": lambda a: np.asarray(Image.fromarray(a).convert("L").convert("RGB")),
    "under-exposed (x0.45)": lambda a: (a * 0.45).astype(np.uint8),
    "JPEG quality 15": lambda a: _jpeg(a, 15),
}


def evaluate(
    encoder: GateEncoder, bank: GateBank, cores: str | Path | None, not_cores: str | Path | None, edits: bool = False
) -> dict[str, Any]:
    """Acceptance rate on core photos (each scored with its own photo left out of the bank) and
    rejection rate on photos that are not cores; with `edits`, also the acceptance of the core
    photos edited by each of `EDITS` (close-ups, a strip, turned, grey, dark, coarse JPEG)."""
    report: dict[str, object] = {"threshold": bank.threshold}
    if edits and cores is not None:
        photos = {p.stem: read_image_file(p) for p in list_images(cores)}
        edited: dict[str, object] = {}
        for name, edit in EDITS.items():
            scores = {k: bank.score(encoder.embed(gate_views(np.ascontiguousarray(edit(a)))), exclude=k) for k, a in photos.items()}
            lowest = min(scores, key=scores.__getitem__)
            accepted = sum(s >= bank.threshold for s in scores.values())
            edited[name] = {"rate": accepted / len(scores), "count": len(scores), "lowest": {lowest: round(scores[lowest], 4)}}
        report["edited_cores"] = edited
    for label, folder, want in (("cores", cores, True), ("not_cores", not_cores, False)):
        if folder is None:
            continue
        scores = {p.stem: bank.score(encoder.embed(gate_views(read_image_file(p))), exclude=p.stem) for p in list_images(folder)}
        right = sum((s >= bank.threshold) == want for s in scores.values())
        report[label] = {
            "scores": {k: round(v, 4) for k, v in scores.items()},
            "rate": right / len(scores) if scores else None,
            "count": len(scores),
        }
    return report


def main(argv: list[str] | None = None) -> None:
    """Build a model's gate bank, or evaluate the gate on core and non-core photos."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="embed a folder of core photos into <out>/gate.npz")
    build.add_argument("--images", required=True)
    build.add_argument("--out", required=True, help="checkpoint directory")
    build.add_argument("--threshold", type=float, default=0.42)
    check = sub.add_parser("evaluate", help="acceptance on cores (leave-one-photo-out), rejection on not-cores")
    check.add_argument("--model", required=True, help="checkpoint directory with gate.npz")
    check.add_argument("--cores")
    check.add_argument("--not-cores")
    check.add_argument("--json", help="write the report here")
    check.add_argument(
        "--edits", action="store_true", help="also score the core photos close up, as a strip, turned, grey, dark and coarsely compressed"
    )
    args = parser.parse_args(argv)
    encoder = GateEncoder()
    if args.command == "build":
        built = build_bank(encoder, args.images, args.threshold)
        print(f"{len(built.embeddings)} embeddings from {len(set(built.sources.tolist()))} photos → {built.save(args.out)}")
        return
    bank = GateBank.load(args.model)
    if bank is None:
        raise SystemExit(f"{args.model} has no {BANK_FILE}.")
    report = evaluate(encoder, bank, args.cores, args.not_cores, edits=args.edits)
    for label in ("cores", "not_cores"):
        if label in report:
            part = report[label]
            assert isinstance(part, dict)
            print(f"{label}: {'accepted' if label == 'cores' else 'rejected'} {part['rate']:.0%} of {part['count']}")
            for name, score in part["scores"].items():
                print(f"  {name:<24} {score:.3f}")
    for name, part in report.get("edited_cores", {}).items():
        ((photo, score),) = part["lowest"].items()
        print(f"cores, {name}: accepted {part['rate']:.0%} of {part['count']} (lowest {score:.3f}, {photo})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
