import itertools

import numpy as np
from PIL import Image, ImageDraw

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


def opt_in_pairs(option: str, seeds: range):
    """(plain, with the option at 1) samples for each seed, having checked that the option at 0
    gives the samples of before it existed and that at 1 it is seeded."""
    for seed in seeds:
        plain, extra = generate_sample(seed), generate_sample(seed, **{option: 1.0})
        off = generate_sample(seed, **{option: 0.0})
        assert np.array_equal(plain.image, off.image) and np.array_equal(plain.mask, off.mask)  # off: the samples of before
        assert np.array_equal(extra.image, generate_sample(seed, **{option: 1.0}).image)  # seeded
        yield plain, extra


def test_boxes_on_a_textured_floor_are_opt_in_and_the_floor_is_background():
    on_floor = 0
    for plain, floored in opt_in_pairs("floor_fraction", range(40)):
        if not np.array_equal(plain.image, floored.image):
            on_floor += 1
            assert (floored.mask != 0).any() and (floored.mask == 0).mean() > (plain.mask == 0).mean() - 0.5
            assert np.array_equal(np.unique(floored.mask), np.unique(plain.mask))  # the same box, the floor all background
    assert on_floor >= 5  # the boxes that were placed in a scene went onto a floor instead


def test_scene_extras_are_opt_in_and_change_only_what_they_say():
    changed = 0
    for plain, extra in opt_in_pairs("scene_fraction", range(30)):
        if not np.array_equal(plain.image, extra.image):
            changed += 1
        # things laid on the photo only ever turn rock into background; no pixel changes class
        moved = plain.mask != extra.mask
        assert (extra.mask[moved] == 0).all()
    assert changed >= 15


def test_foam_packing_is_opt_in_and_fills_slot_ends_as_background():
    from training.synthetic import _pack_slots

    changed = 0
    for plain, packed in opt_in_pairs("packing_fraction", range(30)):
        moved = plain.mask != packed.mask
        assert (packed.mask[moved] == 0).all()  # foam only ever covers rock as background
        changed += not np.array_equal(plain.image, packed.image)
    assert changed >= 10  # most boxes (3 in 5 styles), some columns each

    # two slots of core; the foam spans each packed slot's whole width from one of its ends
    image = np.full((400, 200, 3), 90, np.uint8)
    mask = np.zeros((400, 200), np.uint8)
    mask[20:380, 10:90] = mask[20:380, 110:190] = 2
    before = image.copy()
    for seed in range(20):
        img, msk = image.copy(), mask.copy()
        _pack_slots(np.random.default_rng(seed), img, msk, [(10, 90), (110, 190)], 20, 380)
        outside = np.ones((400, 200), bool)
        outside[20:380, 10:90] = outside[20:380, 110:190] = False
        assert np.array_equal(img[outside], before[outside])
        covered = msk != mask
        if covered.any():
            rows = np.nonzero(covered.any(axis=1))[0]
            assert rows.min() == 20 or rows.max() == 379  # a block starts at one end of its column
            assert img[covered].mean() > 195  # nearly white
            for x0, x1 in ((10, 90), (110, 190)):
                slot_rows = covered[:, x0:x1].any(axis=1)
                assert covered[slot_rows, x0:x1].all()  # across the slot's whole width


def test_cardboard_is_opt_in_and_paints_background_only():
    from training.scene_extras import add_cardboard

    changed = 0
    for plain, worn in opt_in_pairs("cardboard_fraction", range(20)):
        assert np.array_equal(plain.mask, worn.mask)  # stains and flaps are background; no pixel changes class
        changed += not np.array_equal(plain.image, worn.image)
    assert changed >= 10  # every box and tray, not the scans

    # a box of rock on a grey table: the rock is never painted, the background around it is
    image = np.full((300, 300, 3), 128, np.uint8)
    mask = np.zeros((300, 300), np.uint8)
    mask[60:240, 80:220] = 1
    image[mask == 1] = (200, 60, 60)
    for seed in range(10):
        painted, same_mask = add_cardboard(np.random.default_rng(seed), image, mask)
        assert np.array_equal(same_mask, mask) and same_mask is not mask
        assert np.array_equal(painted[mask == 1], image[mask == 1])
        assert not np.array_equal(painted[mask == 0], image[mask == 0])
    assert np.array_equal(add_cardboard(np.random.default_rng(0), image, np.zeros_like(mask))[0], image)  # no rock, no box


def test_each_scene_extra_draws_what_it_is_named_for():
    from training.scene_extras import CHECKER, _colour_checker, _header, _scale_bar, _tone

    rng = np.random.default_rng(3)
    for draw_one in (_colour_checker, _header, _scale_bar):
        canvas = Image.new("RGB", (600, 400), (128, 128, 128))
        x0, y0, x1, y1 = draw_one(rng, ImageDraw.Draw(canvas), 400, 600)
        pixels = np.asarray(canvas)
        inside = pixels[max(0, y0) : y1, max(0, x0) : x1]
        assert inside.size and (inside != 128).any(axis=2).mean() > 0.5  # it covers the box it reports
        outside = pixels.copy()
        outside[max(0, y0) : y1, max(0, x0) : x1] = 128
        assert (outside == 128).all()  # and nothing else
    canvas = Image.new("RGB", (600, 400), (128, 128, 128))
    _colour_checker(np.random.default_rng(0), ImageDraw.Draw(canvas), 400, 600)
    colours = {tuple(c) for c in np.asarray(canvas).reshape(-1, 3)}
    assert set(CHECKER) <= colours  # every patch of the chart
    image = np.full((40, 40, 3), 120, np.uint8)
    mask = np.zeros((40, 40), np.uint8)
    mask[:20] = 3  # mudstone on top, box below
    _tone(np.random.default_rng(1), image, mask, "dark shale")
    assert image[:20].mean() < 50 and (image[20:] == 120).all()  # the shale darkened, the box untouched
    mask[:20] = 6  # anhydrite
    image[:] = 120
    _tone(np.random.default_rng(1), image, mask, "white core")
    assert image[:20].mean() > 190 and (image[20:] == 120).all()


def test_packing_is_white_and_lies_on_background_only():
    from training.scene_extras import _packing

    mask = np.zeros((300, 200), np.uint8)
    mask[:, 40:80] = 1  # a column of sandstone down the middle of the box
    mask[:, 120:160] = 5
    painted = 0
    for seed in range(10):
        image = np.full((300, 200, 3), 90, np.uint8)
        before = mask.copy()
        _packing(np.random.default_rng(seed), image, mask)
        assert np.array_equal(mask, before)  # the mask is not touched
        changed = (image != 90).any(axis=2)
        assert not changed[mask > 0].any()  # never over the core
        if changed.any():
            painted += 1
            assert image[changed].mean() > 150  # nearly white
    assert painted >= 8
