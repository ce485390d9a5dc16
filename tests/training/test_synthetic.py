import itertools

import numpy as np

from pipelines.classes import default_class_table
from training.synthetic import TEXTURES, generate_sample, render_lithology, write_dataset


def test_same_seed_same_sample_and_different_seeds_differ():
    a, b, c = generate_sample(7), generate_sample(7), generate_sample(8)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)


def test_mask_aligns_with_image():
    for seed in range(6):
        sample = generate_sample(seed)
        assert sample.mask.shape == sample.image.shape[:2]
        assert sample.mask.max() <= 11
        rock = sample.mask > 0
        assert 0.02 < rock.mean() < 0.98
        # rock and background differ in colour statistics: the mask is where the rock is drawn
        assert np.abs(sample.image[rock].mean(0) - sample.image[~rock].mean(0)).max() > 3


def test_every_class_is_reachable():
    seen: set[int] = set()
    for seed in range(60):
        seen |= set(np.unique(generate_sample(seed).mask).tolist())
        if len(seen) == 12:
            break
    assert seen == set(range(12))


def texture_features(patch: np.ndarray) -> np.ndarray:
    """Mean colour, grey-level spread and grain (mean step between neighbours, down and across)."""
    grey = patch.astype(float).mean(axis=-1)
    colour = patch.reshape(-1, 3).astype(float).mean(axis=0)
    return np.array([*colour, grey.std(), np.abs(np.diff(grey, axis=0)).mean(), np.abs(np.diff(grey, axis=1)).mean()])


def test_every_lithology_has_a_distinct_texture():
    """Any two lithologies differ clearly in colour, spread or grain (in grey levels of 0-255)."""
    rng = np.random.default_rng(0)
    features = {cid: texture_features(render_lithology(rng, cid, 96, 96)) for cid in TEXTURES}
    assert set(features) == {c.id for c in default_class_table().rock_classes}
    for a, b in itertools.combinations(sorted(features), 2):
        assert np.abs(features[a] - features[b]).max() > 5.0, f"classes {a} and {b} look alike"


def test_requested_size_and_dataset_layout(tmp_path):
    sample = generate_sample(3, height=200, width=300)
    assert sample.image.shape[:2] in ((200, 300), (300, 200))
    out = write_dataset(tmp_path / "ds", count=2, seed=5)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["synth000005.jpg", "synth000006.jpg"]
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["synth000005.png", "synth000006.png"]


def test_boxes_on_a_textured_floor_are_opt_in_and_the_floor_is_background():
    from training.synthetic import generate_sample

    on_floor = 0
    for seed in range(40):
        plain, floored = generate_sample(seed), generate_sample(seed, floor_fraction=1.0)
        assert np.array_equal(plain.image, generate_sample(seed, floor_fraction=0.0).image)  # off: the samples of before
        if not np.array_equal(plain.image, floored.image):
            on_floor += 1
            assert (floored.mask != 0).any() and (floored.mask == 0).mean() > (plain.mask == 0).mean() - 0.5
            assert np.array_equal(np.unique(floored.mask), np.unique(plain.mask))  # the same box, the floor all background
    assert on_floor >= 5  # the boxes that were placed in a scene went onto a floor instead
