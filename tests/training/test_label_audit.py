import json

import numpy as np
import pytest

from training.datasets import LabelledImage
from training.label_audit import audit, best_threshold, largest_rock_pair, main, speckle_share


def test_speckle_share_counts_the_holes_a_closing_fills():
    rock = np.zeros((60, 60), bool)
    rock[10:50, 10:50] = True
    assert speckle_share(rock) == 0.0  # a solid block, even at the picture's edge side
    rock[20:23, 10:50] = False  # a 3 px crack across the block: 120 px of 1,480 rock
    assert speckle_share(rock) == pytest.approx(120 / 1480)
    assert speckle_share(np.zeros((8, 8), bool)) == 0.0
    edge = np.zeros((30, 30), bool)
    edge[:, :10] = True  # rock against the picture's edge: nothing to fill
    assert speckle_share(edge) == 0.0
    with pytest.raises(ValueError):
        speckle_share(rock, closing=4)


def test_best_threshold_finds_the_split_and_its_direction():
    first, second = np.zeros(256, np.int64), np.zeros(256, np.int64)
    first[150:160] = 10  # first is the lighter class
    second[80:90] = 10
    second[155] = 5  # 5 of second's 105 pixels among first's levels
    result = best_threshold(first, second)
    assert result["lighter"] == "first" and 89 <= result["threshold"] < 150
    assert result["accuracy"] == pytest.approx(200 / 205)
    swapped = best_threshold(second, first)
    assert swapped["lighter"] == "second" and swapped["accuracy"] == pytest.approx(200 / 205)
    assert best_threshold(np.zeros(256, np.int64), np.zeros(256, np.int64))["accuracy"] is None


def photo(name: str, lighter: int, darker: int, shade: tuple[int, int]) -> LabelledImage:
    """A 20 × 40 photo: the left half labelled `lighter` at grey shade[0], the right `darker` at shade[1]."""
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :20], image[:, 20:] = shade[0], shade[1]
    mask = np.zeros((20, 40), np.uint8)
    mask[:, :20], mask[:, 20:] = lighter, darker
    return LabelledImage(name, image, mask)


def test_a_split_made_relative_to_each_photo_shows_pooled():
    # each photo splits its two classes perfectly by shade, but the lighter class differs
    items = [photo("a", 1, 7, (150, 90)), photo("b", 7, 1, (140, 60)), photo("c", 1, 1, (100, 100))]
    assert largest_rock_pair(items) == (1, 7)
    report = audit(items, (1, 7))
    split = {row["name"]: row["split"] for row in report["photos"]}
    assert split["a"]["accuracy"] == 1.0 and split["a"]["lighter"] == "first"
    assert split["b"]["accuracy"] == 1.0 and split["b"]["lighter"] == "second"
    assert split["c"] is None  # one class only: nothing to split
    # pooled, sandstone sits at 150, 60 and 100 and interlayered at 90 and 140: no threshold gets all
    assert report["pooled_split"]["accuracy"] < 0.9
    assert report["photos"][0]["first_mean_grey"] == 150 and report["photos"][0]["speckle"] == 0.0


def test_the_command_writes_its_report(tmp_path, capsys):
    from PIL import Image

    for name, item in (("a", photo("a", 1, 7, (150, 90))), ("b", photo("b", 1, 7, (160, 70)))):
        for sub in ("images", "masks"):
            (tmp_path / sub).mkdir(exist_ok=True)
        Image.fromarray(item.image).save(tmp_path / "images" / f"{name}.png")
        Image.fromarray(item.mask).save(tmp_path / "masks" / f"{name}.png")
    main(["--data", str(tmp_path), "--json", str(tmp_path / "audit.json")])
    report = json.loads((tmp_path / "audit.json").read_text())
    assert [row["name"] for row in report["photos"]] == ["a", "b"]
    assert report["pooled_split"]["accuracy"] == 1.0  # 150/160 against 90/70: one threshold does
    assert "one threshold for all photos: 1.00" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path), "--pair", "1"])
