"""Calibration of per-pixel confidence: the isotonic fit, the ECE, and applying a checkpoint's table."""

import numpy as np
import pytest

from pipelines.calibration import calibrated
from pipelines.tiling import Segmentation
from training.calibration import evaluate, fit_isotonic, levels, reliability, remap


def overconfident(seed: int, n: int = 20_000) -> np.ndarray:
    """The levels of pixels whose true chance of being right is the square of their (raw) confidence."""
    rng = np.random.default_rng(seed)
    confidence = rng.integers(90, 256, n).astype(np.uint8)
    correct = rng.random(n) < (confidence / 255.0) ** 2
    return levels(confidence, correct)


def test_a_calibrated_set_has_no_error_and_an_overconfident_one_has():
    rng = np.random.default_rng(0)
    confidence = rng.integers(0, 256, 50_000).astype(np.uint8)
    honest = rng.random(confidence.size) < confidence / 255.0
    assert reliability(levels(confidence, honest))[0] < 0.01
    assert reliability(overconfident(1))[0] > 0.1


def test_the_isotonic_fit_is_monotone_and_removes_the_error_on_photos_it_never_saw():
    lut = fit_isotonic(overconfident(2))
    assert len(lut) == 256 and all(a <= b for a, b in zip(lut, lut[1:], strict=False))
    report = evaluate([overconfident(seed) for seed in range(3, 7)])
    assert report["ece_before"] > 0.1 and report["ece_after"] < 0.02


def calibrated_set(seed: int, n: int = 20_000) -> np.ndarray:
    """The levels of pixels right exactly as often as their confidence says."""
    rng = np.random.default_rng(seed)
    confidence = rng.integers(90, 256, n).astype(np.uint8)
    return levels(confidence, rng.random(n) < confidence / 255.0)


def test_a_group_is_left_out_whole_so_a_fit_is_never_scored_on_its_own_group():
    # two folds' models: one overconfident, one honest. Left out photo by photo, each photo's fit
    # has seen its fold's twin; left out fold by fold, the overconfident photos meet a fit made on
    # honest ones and keep their error.
    photos = [overconfident(10), overconfident(11), calibrated_set(12), calibrated_set(13)]
    by_photo = evaluate(photos)
    by_fold = evaluate(photos, groups=[0, 0, 1, 1])
    assert by_photo["groups"] == 4 and by_fold["groups"] == 2
    assert by_photo["ece_after"] < 0.03 < by_fold["ece_after"]
    assert by_fold["fit"] == by_photo["fit"]  # the table written is fitted on every photo either way


def test_a_table_fitted_elsewhere_is_scored_as_it_is():
    photos = [overconfident(seed) for seed in range(20, 23)]
    identity = evaluate(photos, table=list(range(256)))
    assert identity["ece_after"] == identity["ece_before"] > 0.1 and "fit" not in identity
    assert evaluate(photos, table=fit_isotonic(overconfident(30)))["ece_after"] < 0.02


def test_a_checkpoints_table_maps_the_confidence_and_never_the_classes():
    segmentation = Segmentation(np.array([[1, 2]], np.uint8), np.array([[100, 255]], np.uint8))
    table = [v // 2 for v in range(256)]
    out = calibrated(segmentation, table)
    assert out.class_ids is segmentation.class_ids and out.confidence.tolist() == [[50, 127]]
    assert calibrated(segmentation, None) is segmentation
    with pytest.raises(ValueError, match="256 entries"):
        calibrated(segmentation, [0, 1, 2])


def test_a_fit_on_the_folds_segments_with_the_settings_of_the_model_it_is_for(tmp_path, monkeypatch):
    import json

    import training.calibration as calibration
    from pipelines.model import ModelConfig, build_network, read_config, save_checkpoint
    from tests.conftest import SMALL_MODEL, labelled_folder
    from tests.training.test_crossval import write_fold

    data = labelled_folder(tmp_path / "data", ("p0", "p1"))
    out = tmp_path / "cv"
    for index in (0, 1):
        checkpoint = write_fold(out, index)
        config = {**ModelConfig(**SMALL_MODEL).to_dict(), **json.loads((checkpoint / "config.json").read_text())}
        save_checkpoint(checkpoint, ModelConfig.from_dict(config), build_network(ModelConfig(**SMALL_MODEL)))
    shipped = ModelConfig(**SMALL_MODEL, max_short_side=200, scales=[1.0, 0.5])
    save_checkpoint(tmp_path / "all", shipped, build_network(shipped))
    seen = []

    def measured(model, items):  # what each fold model segments with, and pixels 90 % sure but right 60 % of the time
        seen.append((model.config.max_short_side, model.config.scales, [item.name for item in items]))
        return [levels(np.full(1000, 230, np.uint8), np.arange(1000) % 10 < 6) for _ in items]

    monkeypatch.setattr(calibration, "photo_levels", measured)
    model = str(tmp_path / "all")
    calibration.main(["--folds", str(out), "--data", str(data), "--settings-from", model, "--model", model, "--write"])
    assert seen == [(200, [1.0, 0.5], ["p0"]), (200, [1.0, 0.5], ["p1"])]
    table = read_config(tmp_path / "all").confidence_calibration
    assert table is not None and abs(table[230] - 0.6 * 255) <= 1


def test_the_levels_give_the_figures_the_pixels_give():
    rng = np.random.default_rng(40)
    confidence = rng.integers(0, 256, 30_000).astype(np.uint8)
    correct = rng.random(confidence.size) < (confidence / 255.0) ** 1.5
    ece, bins = reliability(levels(confidence, correct))
    # the same figure straight from the pixels
    p = confidence / 255.0
    index = np.clip(np.digitize(p, np.linspace(0, 1, 16)[1:-1]), 0, 14)
    bins_used = [index == b for b in range(15) if (index == b).any()]
    direct = sum(inside.sum() / p.size * abs(p[inside].mean() - correct[inside].mean()) for inside in bins_used)
    assert ece == pytest.approx(direct, abs=1e-12) and sum(b["share"] for b in bins) == pytest.approx(1.0)
    table = fit_isotonic(levels(confidence, correct))
    assert np.array_equal(remap(levels(confidence, correct), table), levels(np.asarray(table, np.uint8)[confidence], correct))


def fold_run(tmp_path, monkeypatch, names: tuple[str, ...], right: dict[str, int]):
    """A cross-validation run with one finished fold per photo in `names`, a shipped checkpoint,
    and segmenting stubbed to pixels 90 % sure and right `right[photo]` times in ten."""
    import json

    import training.calibration as calibration
    from pipelines.model import ModelConfig, build_network, save_checkpoint
    from tests.conftest import SMALL_MODEL, labelled_folder
    from tests.training.test_crossval import write_fold

    data = labelled_folder(tmp_path / "data", names)
    out = tmp_path / "cv"
    for index in range(len(names)):
        checkpoint = write_fold(out, index)
        config = {**ModelConfig(**SMALL_MODEL).to_dict(), **json.loads((checkpoint / "config.json").read_text())}
        save_checkpoint(checkpoint, ModelConfig.from_dict(config), build_network(ModelConfig(**SMALL_MODEL)))
    shipped = ModelConfig(**SMALL_MODEL, max_short_side=200)
    save_checkpoint(tmp_path / "all", shipped, build_network(shipped))
    monkeypatch.setattr(
        calibration, "photo_levels",
        lambda model, items: [levels(np.full(1000, 230, np.uint8), np.arange(1000) % 10 < right[item.name]) for item in items],
    )  # fmt: skip
    return data, out, str(tmp_path / "all")


def test_levels_recorded_in_one_session_pool_with_the_folds_run_in_the_next(tmp_path, monkeypatch, capsys):
    import json
    import shutil

    import training.calibration as calibration
    from pipelines.model import update_config

    right = {"p0": 6, "p1": 8}
    data, out, model = fold_run(tmp_path, monkeypatch, ("p0", "p1"), right)
    levels_file = tmp_path / "levels.json"
    calibration.main(["--folds", str(out), "--data", str(data), "--settings-from", model, "--record", str(levels_file)])
    first = json.loads(levels_file.read_text())
    assert sorted(first["photos"]) == ["p0", "p1"] and first["photos"]["p0"]["fold"] == "fold0"
    assert first["photos"]["p1"]["pixels"][230] == 1000 and first["photos"]["p1"]["right"][230] == 800
    assert first["settings"]["max_short_side"] == 200
    capsys.readouterr()

    shutil.rmtree(out / "fold1")  # the next session: fold 1's model is gone, fold 0 is measured again
    right["p0"] = 7
    calibration.main(
        ["--folds", str(out), "--data", str(data), "--settings-from", model, "--recorded", str(levels_file), "--record", str(levels_file)]
    )
    pooled = json.loads(levels_file.read_text())["photos"]
    assert pooled["p0"]["right"][230] == 700  # measured now wins
    assert pooled["p1"] == first["photos"]["p1"]  # filled in from the record
    assert "on 2 photos" in capsys.readouterr().out

    shutil.rmtree(out / "fold0")  # a session with no fold model at all: the record alone, rewritten as it was
    calibration.main(
        ["--folds", str(out), "--data", str(data), "--settings-from", model, "--recorded", str(levels_file), "--record", str(levels_file)]
    )
    assert json.loads(levels_file.read_text()) == {**first, "photos": pooled}
    assert first["recipe"] is not None
    capsys.readouterr()

    # the table the model ships with, scored on the pooled photos: p0 and p1 right 70 % and 80 % of the time at 230
    update_config(model, {"confidence_calibration": [min(v, 191) for v in range(256)]})  # 230 -> 191 (0.75)
    calibration.main(["--folds", str(out), "--data", str(data), "--settings-from", model, "--recorded", str(levels_file)])
    printed = capsys.readouterr().out
    assert "ECE 0.1520 before" in printed and "ships: ECE 0.0010" in printed


def test_levels_segmented_with_other_settings_are_not_pooled(tmp_path, monkeypatch):
    import json

    import training.calibration as calibration
    from pipelines.model import ModelConfig, build_network, save_checkpoint
    from tests.conftest import SMALL_MODEL

    data, out, model = fold_run(tmp_path, monkeypatch, ("p0",), {"p0": 6})
    levels_file = tmp_path / "levels.json"
    calibration.main(["--folds", str(out), "--data", str(data), "--settings-from", model, "--record", str(levels_file)])
    other = ModelConfig(**SMALL_MODEL, max_short_side=300)
    save_checkpoint(tmp_path / "other", other, build_network(other))
    with pytest.raises(SystemExit):
        calibration.main(
            ["--folds", str(out), "--data", str(data), "--settings-from", str(tmp_path / "other"), "--recorded", str(levels_file)]
        )
    assert json.loads(levels_file.read_text())["settings"]["max_short_side"] == 200
