"""Labelled folders: how photos and masks are read, and which background of a partially labelled
photo the loss may trust."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.classes import default_class_table
from training.datasets import (
    JUDGED_EDGE,
    DatasetError,
    LabelledImage,
    at_working_size,
    box_mean,
    color_jitter,
    dilate,
    ignore_background,
    ignore_fragmented,
    ignore_regions,
    judged_labels,
    load_folder,
    paste_rock,
    read_mask,
    rescale_item,
)
from training.metrics import IGNORE_ID


def _photo(mask: np.ndarray) -> LabelledImage:
    return LabelledImage("p", np.zeros((*mask.shape, 3), np.uint8), mask)


def test_partial_labels_ignore_background_only_around_the_labelled_rock():
    mask = np.zeros((100, 200), np.uint8)
    mask[40:60, 90:100] = 5  # a labelled piece; unlabelled pieces would lie beside it
    mask[45:50, 120:125] = 7

    out = ignore_background(_photo(mask), margin=0.1).mask  # grows the labels' box by 10 px

    assert (out[40:60, 90:100] == 5).all() and (out[45:50, 120:125] == 7).all()
    box = out[30:70, 80:135]
    assert ((box == IGNORE_ID) | (box == 5) | (box == 7)).all()
    assert out[35, 85] == IGNORE_ID and out[65, 130] == IGNORE_ID
    trusted = np.ones(mask.shape, bool)
    trusted[30:70, 80:135] = False
    assert (out[trusted] == 0).all() and trusted.sum() == 100 * 200 - 40 * 55


def test_partial_labels_box_is_clipped_at_the_border():
    mask = np.zeros((50, 50), np.uint8)
    mask[0:5, 0:5] = 1
    out = ignore_background(_photo(mask), margin=0.2).mask
    assert (out[5:15, 0:15] == IGNORE_ID).all() and (out[15:, :] == 0).all() and (out[:, 15:] == 0).all()


def test_a_held_out_photo_is_judged_on_every_pixel_unless_partially_labelled():
    mask = np.zeros((100, 200), np.uint8)
    mask[40:60, 90:100] = 5
    whole = judged_labels(_photo(mask), partial=False)
    assert (whole.mask == mask).all()  # a completely labelled photo: every pixel judged
    partial = judged_labels(_photo(mask), partial=True).mask
    # in the labels' box (grown by 10 px here) unlabelled rock would be false rock: not judged ...
    assert partial[30, 80] == IGNORE_ID and partial[50, 99 + JUDGED_EDGE + 1] == IGNORE_ID
    # ... but the piece's outline still is (JUDGED_EDGE px of background around it), and the paper outside the box
    assert partial[50, 99 + JUDGED_EDGE] == 0 and partial[50, 115] == 0 and partial[5, 5] == 0
    assert (partial[40:60, 90:100] == 5).all()


def test_everywhere_ignores_every_background_pixel_as_the_first_stages_trained():
    mask = np.zeros((100, 200), np.uint8)
    mask[40:60, 90:100] = 5
    out = ignore_background(_photo(mask), margin=0.1, everywhere=True).mask
    assert (out[40:60, 90:100] == 5).all() and (out[mask == 0] == IGNORE_ID).all()


def test_a_photo_without_any_label_ignores_all_its_background():
    out = ignore_background(_photo(np.zeros((20, 30), np.uint8))).mask
    assert (out == IGNORE_ID).all()


def test_an_edge_band_around_labelled_rock_stays_background():
    mask = np.zeros((100, 200), np.uint8)
    mask[40:60, 90:100] = 5
    mask[40:60, 110:120] = IGNORE_ID  # a box divider: ignored already, not rock

    out = ignore_background(_photo(mask), margin=0.1, edge=3).mask

    band = np.zeros(mask.shape, bool)
    band[37:63, 87:103] = True
    band[40:60, 90:100] = False
    assert (out[band] == 0).all()  # the floor just around the piece is trusted
    assert out[36, 90] == IGNORE_ID and out[50, 104] == IGNORE_ID and out[50, 106] == IGNORE_ID
    assert (out[40:60, 90:100] == 5).all() and (out[40:60, 110:120] == IGNORE_ID).all()
    assert (out[:, :70] == 0).all()  # outside the grown box, as without the band


def test_dilate_grows_by_a_square_of_the_radius():
    binary = np.zeros((9, 11), bool)
    binary[4, 5] = True
    binary[0, 10] = True
    grown = dilate(binary, 2)
    expected = np.zeros_like(binary)
    expected[2:7, 3:8] = True
    expected[0:3, 8:11] = True
    assert (grown == expected).all()
    assert (dilate(binary, 0) == binary).all()


def test_the_source_mask_is_left_untouched():
    mask = np.zeros((20, 20), np.uint8)
    mask[8:12, 8:12] = 1
    ignore_background(_photo(mask))
    assert (mask[mask != 1] == 0).all()


def test_hue_jitter_turns_colours_and_is_off_by_default():
    tan = np.zeros((16, 16, 3), np.uint8)
    tan[...] = (200, 160, 100)
    plain = [color_jitter(np.random.default_rng(seed), tan) for seed in range(20)]
    # without it every pixel keeps its channel order (red > green > blue): only gains and contrast
    assert all((p[..., 0] >= p[..., 1]).all() and (p[..., 1] >= p[..., 2]).all() for p in plain)
    turned = [color_jitter(np.random.default_rng(seed), tan, hue=0.25) for seed in range(20)]
    assert any(t[0, 0, 1] > t[0, 0, 0] or t[0, 0, 2] > t[0, 0, 1] for t in turned)
    # the hue draw comes after the others: the same seed gives the same brightness and contrast
    assert abs(int(turned[0].max()) - int(plain[0].max())) <= 3
    # crops go to torch.from_numpy, which warns about (and must not share) read-only arrays
    assert all(t.flags.writeable for t in turned + plain)


def test_grey_fraction_turns_that_share_of_crops_grey():
    tan = np.zeros((16, 16, 3), np.uint8)
    tan[...] = (200, 160, 100)
    crops = [color_jitter(np.random.default_rng(seed), tan, grey=0.3) for seed in range(200)]
    grey = [c for c in crops if (c[..., 0] == c[..., 1]).all() and (c[..., 1] == c[..., 2]).all()]
    assert 0.2 < len(grey) / len(crops) < 0.4
    assert all(c.flags.writeable for c in crops)
    assert not any((c[..., 0] == c[..., 2]).all() for c in (color_jitter(np.random.default_rng(s), tan) for s in range(50)))


def test_ignored_regions_are_not_judged_and_bad_boxes_are_refused():
    mask = np.zeros((10, 20), np.uint8)
    mask[2:8, 2:8] = 5
    out = ignore_regions(_photo(mask), [[10, 0, 15, 4], [0, 6, 4, 10]]).mask
    assert (out[0:4, 10:15] == IGNORE_ID).all() and (out[6:10, 0:4] == IGNORE_ID).all()
    assert (out[2:6, 4:8] == 5).all() and out[5, 15] == 0 and out[4, 12] == 0 and (mask != IGNORE_ID).all()
    with pytest.raises(ValueError, match="not a box"):
        ignore_regions(_photo(mask), [[5, 0, 5, 4]])


def test_a_rescaled_photo_keeps_its_labels_on_its_pixels():
    mask = np.zeros((10, 20), np.uint8)
    mask[2:8, 4:12] = 7
    image = np.where(mask[..., None] == 7, 200, 30).astype(np.uint8).repeat(3, axis=2)
    big = rescale_item(LabelledImage("p", image, mask), 2.5)
    assert big.image.shape == (25, 50, 3) and big.mask.shape == (25, 50)
    assert set(np.unique(big.mask)) == {0, 7}
    inside = big.mask == 7
    assert big.image[inside].mean() > 150 and big.image[~inside].mean() < 80
    with pytest.raises(ValueError, match="positive"):
        rescale_item(big, 0)


def test_box_mean_averages_the_square_inside_the_image():
    values = np.arange(30, dtype=np.float64).reshape(5, 6)
    out = box_mean(values, 1)
    assert out[2, 2] == pytest.approx(values[1:4, 1:4].mean())
    assert out[0, 0] == pytest.approx(values[:2, :2].mean())  # the corner: only what lies inside
    assert out[4, 5] == pytest.approx(values[3:, 4:].mean())
    assert np.allclose(box_mean(values, 0), values)


def test_fragmented_labels_are_ignored_and_clean_outlines_kept():
    mask = np.zeros((80, 160), np.uint8)
    mask[:, 40:120] = 1  # a piece of core with a straight outline on both sides
    speckle = np.random.default_rng(0).random((30, 30)) < 0.5
    mask[25:55, 60:90][speckle] = 0  # background specks inside it: a speckled dark lamina

    out = ignore_fragmented(_photo(mask), density=0.2).mask

    assert (out[25:55, 60:90][5:-5, 5:-5] == IGNORE_ID).all()
    assert (out[:, :30] == 0).all() and (out[:, 130:] == 0).all()  # far from the speckle, untouched
    assert (out[:15, 35:45] == mask[:15, 35:45]).all()  # a clean outline is trusted: 1/15 of its square
    assert (out[:15, 115:125] == mask[:15, 115:125]).all()
    assert (out != IGNORE_ID).sum() > 0.8 * out.size


def test_ignored_pixels_do_not_make_an_outline():
    mask = np.zeros((40, 40), np.uint8)
    mask[::2, ::2] = IGNORE_ID  # a lattice of ignored pixels in plain background is not speckle
    out = ignore_fragmented(_photo(mask), density=0.2).mask
    assert (out == mask).all()


# -- labelled folders as labelling tools write them ---------------------------------------------


def _labels() -> np.ndarray:
    """A 30 × 50 mask (not square, so a quarter turn shows) with background, two rock classes and
    an ignored patch."""
    mask = np.zeros((30, 50), np.uint8)
    mask[5:25, 5:20] = 1
    mask[5:25, 25:45] = 7
    mask[0:3, 0:3] = IGNORE_ID
    return mask


def _folder(root, photo: Image.Image, mask: Image.Image, name: str = "a", photo_suffix: str = ".jpg", **save):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    photo.save(root / "images" / f"{name}{photo_suffix}", **save)
    mask.save(root / "masks" / f"{name}.png")
    return root


def _rgb(shape) -> Image.Image:
    return Image.fromarray(np.random.default_rng(1).integers(0, 255, (*shape, 3), dtype=np.uint8))


def test_masks_in_class_colours_palette_or_ids_read_as_the_same_ids(tmp_path):
    labels = _labels()
    colours = default_class_table().palette[np.where(labels == IGNORE_ID, 0, labels)]
    colours[labels == IGNORE_ID] = 255  # white: 255 in all three channels is the ignore id
    palette = Image.fromarray(labels)
    entries = np.zeros((256, 3), np.uint8)  # a whole palette, as VOC-style tools write, 255 white
    entries[: len(default_class_table())] = default_class_table().palette
    entries[IGNORE_ID] = 255
    palette.putpalette(entries.flatten().tolist())  # an "L" picture becomes "P", indices kept
    assert palette.mode == "P"

    for kind, mask in {
        "grey": Image.fromarray(labels),
        "rgb ids": Image.fromarray(np.repeat(labels[..., None], 3, axis=2)),
        "class colours": Image.fromarray(colours),
        "palette": palette,
        "16-bit": Image.fromarray(labels.astype(np.uint16)),
    }.items():
        mask.save(tmp_path / f"{kind}.png")
        assert (read_mask(tmp_path / f"{kind}.png") == labels).all(), kind


def test_a_mask_with_values_that_are_not_class_ids_is_refused_with_them(tmp_path):
    labels = _labels()
    labels[10, 10] = 17
    Image.fromarray(labels).save(tmp_path / "ids.png")
    with pytest.raises(DatasetError, match=r"ids.png holds values that are not class ids: 17 \(1 px\)"):
        read_mask(tmp_path / "ids.png")
    colours = np.zeros((*labels.shape, 3), np.uint8)
    colours[:, :10] = (10, 200, 30)  # a colour of no class
    Image.fromarray(colours).save(tmp_path / "colours.png")
    with pytest.raises(DatasetError, match=r"colours that are not in the class table: \(10, 200, 30\) 300 px"):
        read_mask(tmp_path / "colours.png")


def test_a_phone_photo_is_read_turned_as_displayed_and_its_mask_fits_either_way(tmp_path):
    labels = _labels()  # drawn on the photo as displayed: 30 rows × 50 columns
    shown = np.asarray(_rgb(labels.shape))
    stored = np.ascontiguousarray(np.rot90(shown, 1))  # EXIF orientation 6 turns these 90° clockwise to show them
    exif = Image.Exif()
    exif[0x0112] = 6

    displayed = load_folder(
        _folder(tmp_path / "shown", Image.fromarray(stored), Image.fromarray(labels), photo_suffix=".png", exif=exif.tobytes())
    )[0]
    assert displayed.image.shape[:2] == labels.shape and (displayed.image == shown).all()
    assert (displayed.mask == labels).all()

    # a tool that ignores EXIF draws on the stored pixels; the mask is turned with the photo
    as_stored = Image.fromarray(np.ascontiguousarray(np.rot90(labels, 1)))
    turned = load_folder(_folder(tmp_path / "stored", Image.fromarray(stored), as_stored, photo_suffix=".png", exif=exif.tobytes()))[0]
    assert (turned.mask == labels).all()

    with pytest.raises(DatasetError, match=r"is 20 x 30 pixels but its photo is 50 x 30"):
        load_folder(_folder(tmp_path / "wrong", Image.fromarray(shown), Image.fromarray(labels[:, :20])))


def test_photos_are_decoded_as_the_service_decodes_them(tmp_path):
    grey16 = (np.arange(30 * 50, dtype=np.uint32).reshape(30, 50) * 40).astype(np.uint16)  # up to 59,960 of 65,535
    item = load_folder(_folder(tmp_path, Image.fromarray(grey16), Image.fromarray(_labels()), photo_suffix=".png"))[0]
    assert item.image.dtype == np.uint8 and item.image.shape == (30, 50, 3)
    assert item.image.max() == round(59960 / 65535 * 255) and item.image.min() == 0  # rescaled, not clipped at 255


def test_photos_without_masks_are_named_and_left_out_and_an_empty_folder_is_refused(tmp_path, caplog):
    root = _folder(tmp_path / "data", _rgb((30, 50)), Image.fromarray(_labels()))
    _rgb((30, 50)).save(root / "images" / "b.jpg")
    Image.fromarray(_labels()).save(root / "masks" / "c.png")
    with caplog.at_level("WARNING"):
        assert [item.name for item in load_folder(root)] == ["a"]
    assert "without a mask in masks/ left out: b.jpg" in caplog.text
    assert "without a photo in images/ left out: c" in caplog.text
    with pytest.raises(DatasetError, match="has no labelled photo with the id zz"):
        load_folder(root, names={"a", "zz"})
    with pytest.raises(DatasetError, match="needs images/"):
        load_folder(tmp_path / "nowhere")
    (root / "masks" / "a.png").unlink()
    with pytest.raises(DatasetError, match="No photo/mask pairs"):
        load_folder(root)


def test_the_commands_refuse_a_bad_folder_with_a_sentence_not_a_traceback(tmp_path, capsys):
    from training.evaluate import main as evaluate_main
    from training.train import main as train_main

    labels = _labels()
    labels[0, 0] = 40
    root = _folder(tmp_path / "data", _rgb(labels.shape), Image.fromarray(labels))
    with pytest.raises(SystemExit, match="holds values that are not class ids: 40"):
        train_main(["--out", str(tmp_path / "run"), "--data", str(root), "--steps", "1", "--workers", "0", "--pretrained", "none"])
    (root / "masks" / "a.png").unlink()
    Image.fromarray(_labels()).save(root / "masks" / "a.png")
    with pytest.raises(SystemExit, match="--holdout names b, which no --data folder holds"):
        train_main(
            [
                "--out",
                str(tmp_path / "run"),
                "--data",
                str(root),
                "--holdout",
                "b",
                "--steps",
                "1",
                "--workers",
                "0",
                "--pretrained",
                "none",
            ]
        )
    with pytest.raises(SystemExit) as exit_:
        evaluate_main(
            ["--model", str(Path(__file__).resolve().parents[2] / "models" / "lithoseg-default"), "--data", str(tmp_path / "nowhere")]
        )
    assert exit_.value.code == 2
    assert "is not a labelled folder: it needs images/ (photos) and masks/" in capsys.readouterr().err


def test_a_photo_over_the_working_size_is_scaled_down_with_its_labels_on_its_pixels():
    mask = np.zeros((300, 200), np.uint8)
    mask[:, 100:] = 5  # the right half limestone
    image = np.zeros((300, 200, 3), np.uint8)
    image[:, 100:] = 200
    item = LabelledImage("p", image, mask)

    small = at_working_size(item, 100)

    assert small.mask.shape == (150, 100) and small.image.shape == (150, 100, 3)
    assert set(np.unique(small.mask)) == {0, 5}  # nearest neighbour: no blended ids
    assert (small.mask[:, 52:] == 5).all() and (small.mask[:, :48] == 0).all()
    assert (small.image[:, 56:] == 200).all()  # (Lanczos rings a few pixels from the step)
    assert at_working_size(item, 200) is item and at_working_size(item, None) is item  # at or under the size: as it is


def test_pasted_rock_brings_its_labels_and_the_cracks_between_its_pieces_and_nothing_else():
    target_image, target_mask = np.full((40, 40, 3), 10, np.uint8), np.zeros((40, 40), np.uint8)
    target_mask[30:, :] = 5  # the target's own rock, left where nothing is pasted
    target_mask[:4, :4] = IGNORE_ID
    source_image, source_mask = np.full((40, 40, 3), 200, np.uint8), np.zeros((40, 40), np.uint8)
    source_mask[5:15, 5:12] = 1
    source_mask[5:15, 14:20] = 1  # a 2 px crack between two pieces goes with them, as background
    source_mask[0:3, 30:33] = IGNORE_ID  # not rock: not pasted
    image, mask = paste_rock((target_image, target_mask), (source_image, source_mask))
    assert (mask[5:15, 5:20] == source_mask[5:15, 5:20]).all() and (mask[5:15, 12:14] == 0).all()
    assert (image[5:15, 5:20] == 200).all()  # the crack's pixels are the source's too
    untouched = np.ones((40, 40), bool)
    untouched[5:15, 5:20] = False
    assert (mask[untouched] == target_mask[untouched]).all() and (image[untouched] == 10).all()
    assert (target_mask[5:15, 5:20] == 0).all() and (target_image == 10).all()  # the inputs are left as they were
    # a source without rock pastes nothing
    empty = paste_rock((target_image, target_mask), (source_image, np.zeros_like(source_mask)))
    assert (empty[0] == target_image).all() and (empty[1] == target_mask).all()
    with pytest.raises(ValueError, match="different sizes"):
        paste_rock((target_image, target_mask), (source_image[:20], source_mask[:20]))
