import json

import numpy as np
import pytest
from PIL import Image

from pipelines.model import ModelConfig, build_network, save_checkpoint
from tests.conftest import DATA, SMALL_MODEL, labelled_folder
from training.evaluate import ERROR_COLOURS, error_map
from training.evaluate import main as evaluate_main
from training.metrics import IGNORE_ID


def test_error_map_colours_each_kind_of_mistake():
    truth = np.array([[0, 0, 1, 1, 5, IGNORE_ID]], np.uint8)
    predicted = np.array([[0, 3, 1, 0, 7, 1]], np.uint8)
    colours = [tuple(int(v) for v in px) for px in error_map(truth, predicted)[0]]
    assert colours == [
        (0, 0, 0),  # background found
        ERROR_COLOURS["false_rock"],
        ERROR_COLOURS["rock_found"],
        ERROR_COLOURS["missed_rock"],
        ERROR_COLOURS["wrong_class"],
        (255, 255, 255),  # not judged
    ]


def test_the_command_reports_each_image_and_writes_overlays(tmp_path, capsys):
    folder = labelled_folder(tmp_path / "data", ("a", "b"))
    config = ModelConfig(**SMALL_MODEL)
    save_checkpoint(tmp_path / "ckpt", config, build_network(config))
    evaluate_main(
        ["--model", str(tmp_path / "ckpt"), "--data", str(folder), "--json", str(tmp_path / "r.json"), "--overlays", str(tmp_path / "ov")]
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert [row["name"] for row in report["per_image"]] == ["a", "b"]
    # the same photo twice: each image's figures equal the pooled ones
    for row in report["per_image"]:
        assert abs(row["pixel_accuracy"] - report["pixel_accuracy"]) < 1e-9
    for key in ("false_rock_pixels", "missed_rock_pixels", "wrong_rock_class_pixels"):
        assert sum(row[key] for row in report["per_image"]) == report[key]
    # where each image's labelled rock went: its shares add up to the whole class (the 1 % floor aside)
    for row in report["per_image"]:
        assert set(row["predicted_as"]) == {"sandstone", "interlayered sandstones and mudstones"}  # cc05's labelled classes
        assert all(0.9 <= sum(given.values()) <= 1.0 + 1e-9 for given in row["predicted_as"].values())
    printed = capsys.readouterr().out
    assert "a " in printed and "where each image's rock goes" in printed
    photo = Image.open(DATA / "cc05.jpg")
    strip = Image.open(tmp_path / "ov" / "a.png")
    assert strip.size == (photo.width * 4, photo.height)


def test_synthetic_images_from_another_seed_and_never_from_training_seeds(tmp_path, capsys):
    from training.synthetic import TRAINING_SEEDS_BELOW

    config = ModelConfig(**SMALL_MODEL)
    save_checkpoint(tmp_path / "ckpt", config, build_network(config))
    evaluate_main(
        ["--model", str(tmp_path / "ckpt"), "--synthetic", "2", "--synthetic-seed", "41000000", "--json", str(tmp_path / "r.json")]
    )
    assert [row["name"] for row in json.loads((tmp_path / "r.json").read_text())["per_image"]] == ["synthetic41000000", "synthetic41000001"]
    with pytest.raises(SystemExit):
        evaluate_main(["--model", str(tmp_path / "ckpt"), "--synthetic", "2", "--synthetic-seed", str(TRAINING_SEEDS_BELOW - 1)])
    assert "training draws the seeds below it" in capsys.readouterr().err


def test_a_partially_labelled_photo_is_judged_as_validation_judges_it_unless_every_pixel_is_asked(tmp_path):
    from training.datasets import EVERY_PIXEL, JUDGING

    folder = labelled_folder(tmp_path / "data", ("p0",))
    (folder / "manifest.json").write_text(json.dumps({"photos": [{"id": "p0", "label_quality": "partial"}]}))
    config = ModelConfig(**SMALL_MODEL)
    save_checkpoint(tmp_path / "ckpt", config, build_network(config))
    reports = {}
    for name, extra in (("judged", []), ("every", ["--every-pixel"])):
        evaluate_main(["--model", str(tmp_path / "ckpt"), "--data", str(folder), "--json", str(tmp_path / f"{name}.json"), *extra])
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())
    photo = Image.open(DATA / "cc05.jpg")
    assert reports["every"]["pixels"] == photo.width * photo.height and reports["every"]["judging"] == EVERY_PIXEL
    assert reports["judged"]["pixels"] < photo.width * photo.height and reports["judged"]["judging"] == JUDGING
