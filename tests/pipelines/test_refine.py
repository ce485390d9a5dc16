import json

import numpy as np
import pytest
import torch

from pipelines.errors import CheckpointError
from pipelines.model import ModelConfig, build_network, load_checkpoint, predict_probabilities, save_checkpoint
from pipelines.refine import GuidedFilter, fast_guided_blur
from tests.conftest import SMALL_MODEL

EDGE = 32  # the photo's edge: columns left of it dark, right of it bright


def edge_tile() -> torch.Tensor:
    tile = np.full((1, 64, 64, 3), 40, np.uint8)
    tile[:, :, EDGE:] = 200
    return torch.from_numpy(tile)


def soft_boundary(at: float) -> torch.Tensor:
    """Two classes whose probabilities cross smoothly at column `at` (class 1 to the right)."""
    columns = torch.arange(64, dtype=torch.float32)
    right = torch.sigmoid((columns - at) / 3.0).expand(64, 64)
    return torch.stack([1 - right, right])[None]


def boundary_column(probabilities: torch.Tensor) -> int:
    labels = probabilities[0].argmax(0)
    assert (labels == labels[:1]).all(), "the boundary should be the same on every row"
    return int(labels[0].to(torch.int64).argmax())  # first column of class 1


@pytest.mark.parametrize("offset", [-4, -2, 3], ids=["4 px short", "2 px short", "3 px past"])
def test_the_boundary_moves_onto_the_photos_edge(offset):
    probabilities = soft_boundary(at=EDGE + offset - 0.5)  # the network's boundary misses the edge
    assert boundary_column(probabilities) == EDGE + offset
    refined = GuidedFilter(kernel_size=17, eps=1e-3, subsample=2)(probabilities.clone(), edge_tile())
    assert abs(boundary_column(refined) - EDGE) <= 1


def test_a_flat_photo_leaves_the_boundary_where_it_was():
    flat = torch.full((1, 64, 64, 3), 120, dtype=torch.uint8)
    refined = GuidedFilter(kernel_size=17, eps=1e-3, subsample=2)(soft_boundary(at=EDGE - 6.5), flat)
    assert abs(boundary_column(refined) - (EDGE - 6)) <= 1


def test_refined_probabilities_stay_probabilities():
    generator = torch.Generator().manual_seed(0)
    probabilities = torch.softmax(torch.randn(2, 12, 96, 64, generator=generator) * 4, dim=1)
    tiles = torch.randint(0, 256, (2, 96, 64, 3), dtype=torch.uint8, generator=generator)
    refined = GuidedFilter()(probabilities, tiles)
    assert refined.shape == (2, 12, 96, 64)
    assert refined.min() >= 0 and refined.max() <= 1
    assert torch.allclose(refined.sum(1), torch.ones(2, 96, 64), atol=1e-5)


def test_the_checkpoint_says_whether_and_how_to_refine(tmp_path):
    config = ModelConfig(**SMALL_MODEL)
    save_checkpoint(tmp_path / "plain", config, build_network(config))
    plain = load_checkpoint(tmp_path / "plain", "cpu")
    assert plain.refine is None
    refined_config = ModelConfig(**SMALL_MODEL, guided_filter={"kernel_size": 9, "eps": 0.01, "subsample": 1})
    save_checkpoint(tmp_path / "refined", refined_config, plain.network)
    refined = load_checkpoint(tmp_path / "refined", "cpu")
    assert refined.refine == GuidedFilter(kernel_size=9, eps=0.01, subsample=1)
    tile = np.zeros((64, 64, 3), np.uint8)
    tile[:, 20:] = 230
    tile[40:, :] //= 3
    before, after = (predict_probabilities(model, [tile])[0].astype(np.float32) for model in (plain, refined))
    assert np.abs(before - after).max() > 1e-3  # the same network, refined
    assert np.allclose(after.sum(0), 1.0, atol=1e-2)


@pytest.mark.parametrize(
    "raw",
    [{"kernel_size": 8}, {"kernel_size": 1}, {"eps": 0}, {"subsample": 0}, {"radius": 8}],
    ids=["even", "too small", "no eps", "subsample 0", "unknown key"],
)
def test_a_bad_guided_filter_setting_is_a_clear_error(tmp_path, raw):
    config = ModelConfig(**SMALL_MODEL)
    save_checkpoint(tmp_path / "ckpt", config, build_network(config))
    stored = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    stored["guided_filter"] = raw
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(stored))
    with pytest.raises(CheckpointError, match="guided_filter"):
        load_checkpoint(tmp_path / "ckpt", "cpu")


def test_classes_that_win_nowhere_are_left_as_they_are():
    boundary = soft_boundary(at=EDGE - 3.5) * 0.95
    faint = torch.full((1, 10, 64, 64), 0.005)  # ten classes under 1/12 on every pixel: never the argmax
    refined = GuidedFilter(kernel_size=17, eps=1e-3, subsample=2)(torch.cat([boundary, faint], dim=1), edge_tile())
    assert abs(boundary_column(refined[:, :2]) - EDGE) <= 1
    assert torch.allclose(refined[:, 2:], faint, atol=2e-4)
    assert torch.allclose(refined.sum(1), torch.ones(1, 64, 64), atol=1e-5)


@pytest.mark.parametrize(
    "shape,subsample",
    [((1, 12, 512, 512), 2), ((2, 12, 256, 384), 2), ((1, 6, 96, 64), 4), ((1, 12, 100, 70), 3), ((1, 4, 64, 64), 1)],
)
def test_the_fast_guided_blur_gives_kornias_numbers_exactly(shape, subsample):
    """Strided subsampling and channels picked after it give bit for bit what kornia's
    `guided_blur` gives on the selected channels: on tile-sized inputs (sides a multiple of the
    subsampling, the fast path) and on others (kornia's own function)."""
    from kornia.filters import guided_blur

    generator = torch.Generator().manual_seed(shape[2])
    probabilities = torch.softmax(torch.randn(shape, generator=generator) * 3, dim=1)
    guide = torch.rand((shape[0], 1, *shape[2:]), generator=generator)
    channels = torch.arange(0, shape[1], 2)
    expected = guided_blur(guide, probabilities.index_select(1, channels), 17, 1e-3, subsample=subsample)
    assert torch.equal(fast_guided_blur(guide, probabilities, channels, 17, 1e-3, subsample), expected)
