"""Edge-aware refinement of a tile's class probabilities: a guided filter (He, Sun and Tang,
"Guided Image Filtering", 2013), `kornia.filters.guided_blur`, with the tile's grey levels as the
guide (`fast_guided_blur`: kornia's arithmetic with a cheaper subsampling, written here).

The network's probabilities change smoothly across the edge of a piece of core, and the rock
class often stops a few pixels short of it (the missed rock on the held-out photos lies mostly
within 20 px of background). The filter fits the probabilities, window by window, as a linear
function of the photo's brightness, so that where the photo has an edge the probabilities change
at that edge. It is linear, so the classes' probabilities still sum to one; the small overshoot is
clipped to 0–1 and the sum restored. Its size and strength are part of the checkpoint
(`config.json`, `guided_filter`), measured for that network (MODEL_CARD.md); the defaults here
are the shipped model's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.nn.functional import interpolate

from pipelines.errors import checkpoint_section


@dataclass(frozen=True)
class GuidedFilter:
    """Edge-aware smoothing of class probabilities guided by the photo (He et al.'s guided filter)."""

    kernel_size: int = 17  # the window, in pixels of the tile, over which each linear fit is made
    eps: float = 1e-3  # regularisation: a window whose grey-level variance is well under eps is smoothed, not followed
    subsample: int = 2  # fit on every n-th pixel and interpolate the fits ("fast guided filter"): n² less work

    @classmethod
    def from_config(cls, raw: dict[str, Any] | None) -> GuidedFilter | None:
        return checkpoint_section(
            cls,
            "guided_filter",
            raw,
            lambda s: s.kernel_size >= 3 and s.kernel_size % 2 == 1 and s.eps > 0 and s.subsample >= 1,
            "kernel_size odd and ≥ 3, eps > 0, subsample ≥ 1",
        )

    def to_config(self) -> dict[str, Any]:
        return asdict(self)

    def __call__(self, probabilities: torch.Tensor, tiles: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) probabilities refined along the edges of (B, H, W, 3) uint8 tiles (in place)."""
        guide = tiles.to(probabilities.device).float().mean(dim=-1, keepdim=True).permute(0, 3, 1, 2).div_(255.0)
        # Only classes that can win somewhere: one whose probability stays under 1/C on every
        # pixel of the batch is never the argmax (the top one of C is at least 1/C). Most tiles
        # show the background and two or three rocks, so this is a third of the work or less.
        contenders = (probabilities.amax(dim=(0, 2, 3)) >= 1.0 / probabilities.shape[1]).nonzero().squeeze(1)
        filtered = fast_guided_blur(guide, probabilities, contenders, self.kernel_size, self.eps, self.subsample)
        refined = probabilities.index_copy_(1, contenders, filtered).clamp_(0.0, 1.0)
        return refined.div_(refined.sum(dim=1, keepdim=True).clamp_min_(1e-6))


def fast_guided_blur(
    guide: torch.Tensor, input: torch.Tensor, channels: torch.Tensor, kernel_size: int, eps: float, subsample: int
) -> torch.Tensor:
    """`kornia.filters.guided_blur(guide, input[:, channels], kernel_size, eps, subsample=subsample)`
    for a (B, 1, H, W) float32 guide and (B, C, H, W) float32 input, the same numbers (the same
    box filters, solve and upsampling, in the same order), with the subsampling done by strides.

    Kornia subsamples by `index_select`, a gather along rows and then columns, and the channels
    are selected at full size first: 20 % of the refinement's time on a 512² tile. Where H and W
    are multiples of `subsample` (a tile always is: its sides are multiples of the output stride)
    kornia's nearest pixels are every `subsample`-th, which a strided view reads without a gather,
    and the channels are picked from the subsampled view, a quarter of the data. Elsewhere, and
    without subsampling, this is kornia's function itself."""
    from kornia.filters import box_blur, guided_blur

    height, width = guide.shape[-2:]
    if subsample == 1 or height % subsample or width % subsample:
        return guided_blur(guide, input.index_select(1, channels), kernel_size, eps, subsample=subsample)
    window = ((kernel_size - 1) // subsample + 1,) * 2  # kornia's window on the subsampled grid
    guide_sub = guide[..., ::subsample, ::subsample]
    input_sub = input[..., ::subsample, ::subsample].index_select(1, channels)
    with torch.autocast(device_type=guide.device.type, enabled=False):
        mean_i = box_blur(guide_sub, window, "reflect", separable=False)
        var_i = torch.addcmul(box_blur(guide_sub.square(), window, "reflect", separable=False), mean_i, mean_i, value=-1)
        mean_p = box_blur(input_sub, window, "reflect", separable=False)
        cov_ip = torch.addcmul(box_blur(guide_sub * input_sub, window, "reflect", separable=False), mean_i, mean_p, value=-1)
        a = cov_ip / (var_i + eps)
        b = torch.addcmul(mean_p, a, mean_i, value=-1)
        mean_a = interpolate(box_blur(a, window, "reflect", separable=False), size=(height, width), mode="bilinear")
        mean_b = interpolate(box_blur(b, window, "reflect", separable=False), size=(height, width), mode="bilinear")
        return torch.addcmul(mean_b, mean_a, guide)
