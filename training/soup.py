"""Average the weights of checkpoints fine-tuned from a common ancestor into one checkpoint.

A uniform "model soup" (Wortsman et al., 2022, "Model soups: averaging weights of multiple
fine-tuned models improves accuracy without increasing inference time"): runs that start from the
same weights stay in one basin, so their element-wise mean is a network of its own that often
generalises better than its ingredients and costs one network at inference, unlike an ensemble.
BatchNorm running statistics are averaged like the weights; integer buffers (batch counters) are
taken from the first ingredient.

    python -m training.soup --out var/runs/soup models/lithoseg-default var/runs/default-v9/checkpoints/step-001750

Written here rather than taken from a library: timm's `avg_checkpoints.py` is a script in its
repository, not part of the installed package, and reads its own checkpoint format.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import load_file

from pipelines.checkpoint_files import WEIGHTS_FILE
from pipelines.errors import CheckpointError
from pipelines.gate import GateBank
from pipelines.model import build_network, read_config, save_checkpoint

# what must agree for two checkpoints' weights to be averaged and served alike
_SAME = ("architecture", "encoder", "architecture_kwargs", "classes", "tile_size", "tile_overlap", "mean", "std")


def average_weights(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point tensors (computed in float64); other tensors from the first."""
    if not states:
        raise ValueError("A soup needs at least one checkpoint.")
    first = states[0]
    for index, state in enumerate(states[1:], start=2):
        if state.keys() != first.keys() or any(state[k].shape != first[k].shape for k in first):
            raise CheckpointError(
                f"Checkpoint {index} has different tensors from checkpoint 1; only checkpoints of one network can be averaged."
            )
    averaged = {}
    for name, tensor in first.items():
        if tensor.is_floating_point():
            total = torch.stack([state[name].double() for state in states]).sum(dim=0)
            averaged[name] = (total / len(states)).to(tensor.dtype)
        else:
            averaged[name] = tensor.clone()
    return averaged


def make_soup(directories: list[str | Path], out: str | Path, version: str | None = None) -> Path:
    """Write the uniform soup of the checkpoint directories to `out`; the first one's config is kept,
    with `training.soup` listing the ingredients and their own training records."""
    configs = [read_config(d) for d in directories]
    base = configs[0]
    for directory, config in zip(directories[1:], configs[1:], strict=True):
        differing = [key for key in _SAME if getattr(config, key) != getattr(base, key)]
        if differing:
            raise CheckpointError(
                f"{directory} differs from {directories[0]} in {', '.join(differing)}; only checkpoints of one network can be averaged."
            )
    network = build_network(base)
    network.load_state_dict(average_weights([load_file(str(Path(d) / WEIGHTS_FILE)) for d in directories]))
    base.training = {
        "soup": {
            "method": "uniform average of the ingredients' weights and BatchNorm statistics",
            "ingredients": [
                {"path": str(d), "version": c.version, "training": c.training} for d, c in zip(directories, configs, strict=True)
            ],
        }
    }
    base.metrics = {}
    if version is not None:
        base.version = version
    path = save_checkpoint(out, base, network)
    for directory in directories:  # the content gate of the first ingredient that has one
        if GateBank.carry(directory, path):
            break
    return path


def main(argv: list[str] | None = None) -> None:
    """`python -m training.soup`: average the weights of several runs into one checkpoint."""
    parser = argparse.ArgumentParser(description="Average checkpoints of one network (a uniform model soup).")
    parser.add_argument("checkpoints", nargs="+", help="checkpoint directories fine-tuned from common weights")
    parser.add_argument("--out", required=True, help="directory to write the averaged checkpoint to")
    parser.add_argument("--version", help="version string for the new checkpoint's config")
    args = parser.parse_args(argv)
    path = make_soup(args.checkpoints, args.out, args.version)
    print(f"averaged {len(args.checkpoints)} checkpoints into {path}")


if __name__ == "__main__":
    main()
