import json
from pathlib import Path

import pytest
import torch

from training.crossval import (
    check_init_unseen,
    finished_folds,
    fold_finished,
    make_folds,
    markdown,
    photo_sources,
    photos_seen,
    report,
    run_fold,
)


def test_folds_are_balanced_across_sources_and_hold_every_photo_once():
    sources = {f"cc{i:02d}": "handheld" for i in range(8)} | {f"dji{i:04d}": "drone" for i in range(11)}
    folds = make_folds(sources, 5)
    flat = [photo for fold in folds for photo in fold]
    assert sorted(flat) == sorted(sources) and len(flat) == len(set(flat))
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    for fold in folds:
        kinds = {sources[p] for p in fold}
        assert "drone" in kinds  # 11 drone photos over 5 folds: two or three each
    assert sum(1 for fold in folds if "handheld" in {sources[p] for p in fold}) == 5
    with pytest.raises(ValueError):
        make_folds(sources, 1)


def test_sources_come_from_the_manifest_or_else_from_the_ids(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("cc01.jpg", "cc02.jpg", "dji0007.jpg"):
        (tmp_path / "images" / name).write_bytes(b"")
    assert photo_sources(tmp_path) == {"cc01": "cc", "cc02": "cc", "dji0007": "dji"}
    (tmp_path / "manifest.json").write_text(
        json.dumps({"photos": [{"id": "cc01", "subset": "camera"}, {"id": "dji0007", "subset": "drone"}]})
    )
    assert photo_sources(tmp_path) == {"cc01": "camera", "dji0007": "drone"}


def write_fold(root: Path, index: int, rock: float = 0.8, miou: float = 0.5, steps_done: int = 10, recipe: dict | None = None) -> Path:
    """A fold's checkpoint as `crossval run` leaves it: its held-out figures and training record."""
    checkpoint = root / f"fold{index}" / "checkpoint"
    checkpoint.mkdir(parents=True)
    config = {"metrics": {"real_holdout": {"rock_vs_background_iou": rock, "miou_rock_present": miou}},
              "training": {"steps_done": steps_done, "recipe": {**(recipe or {"steps": 10}), "holdout": [f"p{index}"]}}}  # fmt: skip
    (checkpoint / "config.json").write_text(json.dumps(config))
    return checkpoint


def test_the_report_gives_each_fold_and_the_mean_spread_and_worst(tmp_path):
    for index, (rock, miou) in enumerate(((0.8, 0.5), (0.7, 0.4), (0.9, 0.6))):
        write_fold(tmp_path, index, rock, miou, recipe={"steps": 10, "lr": 0.001})
    (tmp_path / "fold3").mkdir()  # a fold still training
    (tmp_path / "fold0.log").write_text("a log beside the folds is not a fold")
    summary = report(tmp_path)
    assert summary["complete"] == 3 and summary["of"] == 4 and summary["folds"]["fold3"] is None
    assert summary["rock_vs_background_iou"] == {"mean": pytest.approx(0.8), "std": pytest.approx(0.0816, abs=1e-4), "min": 0.7, "max": 0.9}
    assert summary["recipe"] == {"steps": 10, "lr": 0.001}
    text = markdown(summary)
    assert "| fold1 | p1 | 10 | 0.700 | 0.400 |" in text and "not finished" in text
    assert finished_folds(tmp_path) == [(tmp_path / f"fold{i}" / "checkpoint", [f"p{i}"]) for i in range(3)]


def test_the_summary_line_gives_the_table_digits(tmp_path):
    # 0.74149... rounded to four places first would print as 0.742 beside the table's 0.741
    write_fold(tmp_path, 3, rock=0.7414942974323013, miou=0.466)
    text = markdown(report(tmp_path))
    assert "| 0.741 |" in text and "mean 0.741" in text and "worst fold 0.741, best 0.741" in text


def test_an_option_added_since_a_fold_ran_does_not_make_an_unfinished_fold_count(tmp_path):
    for index, (steps_done, recipe) in enumerate(((10, {"steps": 10}), (5, {"steps": 10, "packing_fraction": 0.0}))):
        write_fold(tmp_path, index, steps_done=steps_done, recipe=recipe)
    summary = report(tmp_path)
    assert summary["recipe"] == {"steps": 10} and summary["complete"] == 1 and summary["of"] == 2


def test_a_fold_short_of_its_steps_is_not_finished(tmp_path):
    write_fold(tmp_path, 0, rock=0.7, steps_done=6)
    assert not fold_finished(tmp_path / "fold0") and finished_folds(tmp_path) == []


def test_folds_recorded_by_an_earlier_session_fill_in_and_an_unfinished_fold_does_not_count(tmp_path):
    recipe = {"steps": 10, "lr": 0.001}

    def fold(index: int, steps: int, rock: float) -> dict:
        return {"holdout": [f"p{index}"], "steps": steps, "rock_vs_background_iou": rock, "miou_rock_present": 0.5}

    checkpoint = tmp_path / "fold1" / "checkpoint"
    checkpoint.mkdir(parents=True)
    config = {"metrics": {"real_holdout": {"rock_vs_background_iou": 0.7, "miou_rock_present": 0.5}},
              "training": {"steps_done": 10, "recipe": {**recipe, "holdout": ["p1"]}}}  # fmt: skip
    (checkpoint / "config.json").write_text(json.dumps(config))
    recorded = {"recipe": recipe, "folds": {"fold0": fold(0, 10, 0.9), "fold2": fold(2, 6, 0.1)}}
    summary = report(tmp_path, recorded)
    assert list(summary["folds"]) == ["fold0", "fold1", "fold2"]
    assert summary["complete"] == 2 and summary["rock_vs_background_iou"]["mean"] == pytest.approx(0.8)  # fold2 ran 6 of 10 steps
    assert "6 of 10, not finished" in markdown(summary)
    with pytest.raises(ValueError, match="another recipe"):
        report(tmp_path, {"recipe": {"steps": 99}, "folds": {}})


def _checkpoint(path, recipe, **training):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"training": {"recipe": recipe, **training}}))
    return path


def _labelled_folder(path, names):
    for sub in ("images", "masks"):
        (path / sub).mkdir(parents=True)
    for name in names:
        (path / "images" / f"{name}.png").write_bytes(b"")
        (path / "masks" / f"{name}.png").write_bytes(b"")
    return path


def test_a_fold_may_start_only_from_weights_that_never_saw_its_photos(tmp_path):
    data = _labelled_folder(tmp_path / "data", ["a", "b", "c", "d"])
    synthetic = _checkpoint(tmp_path / "synthetic", {"data": [], "real_fraction": 0.0})
    assert photos_seen(synthetic) == set()
    check_init_unseen(synthetic, ["a", "b"])

    # fine-tuned from the synthetic one on a and b, holding out c and d
    tuned = _checkpoint(tmp_path / "tuned", {"data": [str(data)], "real_fraction": 0.6, "holdout": ["c", "d"]},
                        initialised_from={"path": str(synthetic)})  # fmt: skip
    assert photos_seen(tuned) == {"a", "b"}
    check_init_unseen(tuned, ["c", "d"])
    with pytest.raises(ValueError, match="trained on b"):
        check_init_unseen(tuned, ["b", "c"])

    # the chain is followed: a child that trains on synthetic crops only still carries what its parent saw
    child = _checkpoint(tmp_path / "child", {"data": [str(data)], "real_fraction": 0.0}, initialised_from={"path": str(tuned)})
    assert photos_seen(child) == {"a", "b"}
    with pytest.raises(ValueError, match="trained on a"):
        check_init_unseen(child, ["a"])


def test_weights_whose_photos_cannot_be_told_are_refused(tmp_path):
    gone = _checkpoint(tmp_path / "gone", {"data": [str(tmp_path / "elsewhere")], "real_fraction": 0.5, "holdout": []})
    no_record = tmp_path / "bare"
    no_record.mkdir()
    orphan = _checkpoint(tmp_path / "orphan", {"data": [], "real_fraction": 0.0}, initialised_from={"path": str(no_record)})
    for checkpoint in (gone, no_record, orphan):
        assert photos_seen(checkpoint) is None
        with pytest.raises(ValueError, match="Cannot tell"):
            check_init_unseen(checkpoint, ["a"])


def test_run_fold_refuses_a_leaking_init_before_training(tmp_path):
    data = _labelled_folder(tmp_path / "data", ["a", "b", "c"])
    tuned = _checkpoint(tmp_path / "tuned", {"data": [str(data)], "real_fraction": 0.6, "holdout": ["c"]})
    with pytest.raises(ValueError, match="trained on a"):
        run_fold(str(data), str(tmp_path / "cv"), [["a"], ["b", "c"]], 0, ["--init", str(tuned), "--steps", "2"])
    assert not (tmp_path / "cv").exists()  # nothing was trained


def test_rescore_judges_finished_folds_again_and_the_report_refuses_mixed_rules(tmp_path):
    from PIL import Image

    from pipelines.model import ModelConfig, build_network, save_checkpoint
    from tests.conftest import DATA, SMALL_MODEL, labelled_folder
    from training.crossval import main as crossval_main
    from training.crossval import rescore
    from training.datasets import JUDGING

    data = labelled_folder(tmp_path / "data", ("p0", "p1"))
    manifest = {"photos": [{"id": "p0", "label_quality": "partial"}, {"id": "p1", "label_quality": "complete"}]}
    (data / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "cv"
    for index in (0, 1):  # two finished folds as an earlier validation left them (no `judging`)
        checkpoint = write_fold(out, index, rock=0.5, miou=0.25)
        config = {**ModelConfig(**SMALL_MODEL).to_dict(), **json.loads((checkpoint / "config.json").read_text())}
        save_checkpoint(checkpoint, ModelConfig.from_dict(config), build_network(ModelConfig(**SMALL_MODEL)))
    assert report(out)["folds"]["fold0"]["judging"] == "every pixel"

    assert rescore(out, data) == ["fold0", "fold1"]
    folds = report(out)["folds"]
    assert folds["fold0"]["judging"] == folds["fold1"]["judging"] == JUDGING
    assert folds["fold0"]["rock_vs_background_iou"] != 0.5  # the run's figure replaced by the new judgement
    judged = {i: json.loads((out / f"fold{i}" / "checkpoint" / "config.json").read_text())["metrics"]["real_holdout"] for i in (0, 1)}
    photo = Image.open(DATA / "cc05.jpg")
    assert judged[1]["pixels"] == photo.width * photo.height  # p1 is completely labelled: every pixel
    assert judged[0]["pixels"] < photo.width * photo.height  # p0 is partial: its box's background left out

    write_fold(out, 2, rock=0.9, miou=0.5)  # a fold validated by the old rule beside the rescored ones
    with pytest.raises(ValueError, match="rescore"):
        report(out)
    with pytest.raises(SystemExit):  # the command says so in a sentence
        crossval_main(["report", "--out", str(out)])


def test_rescore_with_the_shipped_settings_reports_them_beside_the_folds_own(tmp_path):
    from pipelines.model import ModelConfig, build_network, save_checkpoint
    from tests.conftest import SMALL_MODEL, labelled_folder
    from training.crossval import main as crossval_main
    from training.crossval import rescore

    torch.manual_seed(0)
    network = build_network(ModelConfig(**SMALL_MODEL))
    with torch.no_grad():  # an untrained network says one class everywhere; sharpened, its answer follows the pixels
        network.segmentation_head[0].weight *= 100
    data = labelled_folder(tmp_path / "data", ("p0", "p1"))
    out = tmp_path / "cv"
    for index in (0, 1):
        checkpoint = write_fold(out, index)
        config = {**ModelConfig(**SMALL_MODEL).to_dict(), **json.loads((checkpoint / "config.json").read_text())}
        save_checkpoint(checkpoint, ModelConfig.from_dict(config), network)
    refine = {"kernel_size": 5, "eps": 0.01, "subsample": 1}
    shipped = ModelConfig(**SMALL_MODEL, max_short_side=200, scales=[1.0, 0.5], guided_filter=refine)
    save_checkpoint(tmp_path / "shipped", shipped, build_network(shipped))

    assert rescore(out, data, tmp_path / "shipped") == ["fold0", "fold1"]
    summary = report(out)
    row = summary["folds"]["fold0"]
    assert row["with_settings"]["settings"]["scales"] == [1.0, 0.5] and row["with_settings"]["settings_from"] == str(tmp_path / "shipped")
    figures = ("rock_vs_background_iou", "miou_rock_present")
    assert [row["with_settings"][f] for f in figures] != [row[f] for f in figures]  # another way of segmenting, other figures
    fold_config = json.loads((out / "fold0" / "checkpoint" / "config.json").read_text())
    assert fold_config["scales"] is None and fold_config["guided_filter"] is None  # the fold's own settings untouched
    assert summary["with_settings"]["complete"] == 2
    assert summary["with_settings"]["rock_vs_background_iou"]["min"] == min(
        summary["folds"][f]["with_settings"]["rock_vs_background_iou"] for f in ("fold0", "fold1")
    )
    text = markdown(summary)
    assert "settings |" in text.splitlines()[0] and f"| {row['with_settings']['rock_vs_background_iou']:.3f} |" in text.splitlines()[2]
    assert "shipped's settings, rock-vs-background IoU: mean" in text

    other = json.loads((out / "fold1" / "checkpoint" / "config.json").read_text())
    other["metrics"]["real_holdout_with_settings"]["settings"]["scales"] = [1.0]  # one fold scored with other settings
    (out / "fold1" / "checkpoint" / "config.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="different inference settings"):
        report(out)
    with pytest.raises(SystemExit):
        crossval_main(["report", "--out", str(out)])


def test_attach_gives_a_model_trained_on_every_photo_the_folds_figures_and_settings(tmp_path):
    from pipelines.model import ModelConfig
    from pipelines.validation import validated_classes
    from tests.conftest import SMALL_MODEL
    from training.crossval import attach
    from training.crossval import main as crossval_main

    settings = {"max_short_side": 200, "scales": [1.0, 0.5], "guided_filter": None, "auto_exposure": None}
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "config.json").write_text(json.dumps(ModelConfig(**SMALL_MODEL, **settings).to_dict()))
    out, recipe = tmp_path / "cv", {"steps": 10, "lr": 0.001}
    per_fold = [{"sandstone": (0.4, 100), "limestone": (0.9, 50)}, {"sandstone": (0.6, 300)}]
    for index, classes in enumerate(per_fold):
        checkpoint = write_fold(out, index, rock=0.8 + index / 10, recipe=recipe)
        config = json.loads((checkpoint / "config.json").read_text())
        per_class = {"background": {"iou": 0.95, "pixels": 999}} | {n: {"iou": i, "pixels": p} for n, (i, p) in classes.items()}
        own = config["metrics"]["real_holdout"]
        config["metrics"]["real_holdout"] = own | {"per_class": per_class, "judging": "rule"}
        config["metrics"]["real_holdout_with_settings"] = own | {
            "rock_vs_background_iou": own["rock_vs_background_iou"] + 0.01,
            "per_class": per_class,
            "judging": "rule",
            "settings_from": str(shipped),
            "settings": settings,
        }
        (checkpoint / "config.json").write_text(json.dumps(config))
    write_fold(out, 2, steps_done=5, recipe=recipe)  # still training: not counted
    model = tmp_path / "all" / "checkpoint"
    model.mkdir(parents=True)
    everything = {**ModelConfig(**SMALL_MODEL).to_dict(), "training": {"steps_done": 10, "recipe": {**recipe, "holdout": []}}}
    (model / "config.json").write_text(json.dumps(everything))

    figures = attach(report(out), model, shipped, str(out), 5)
    assert figures["rock_vs_background_iou"] == pytest.approx(0.86)  # the mean of 0.81 and 0.91, with the shipped settings
    assert figures["per_class"]["sandstone"] == {"iou": pytest.approx(0.5), "pixels": 400, "folds": 2}
    assert figures["per_class"]["limestone"] == {"iou": 0.9, "pixels": 50, "folds": 1}
    assert figures["cross_validated"]["complete"] == 2 and figures["cross_validated"]["of"] == 5
    written = json.loads((model / "config.json").read_text())
    assert written["scales"] == [1.0, 0.5] and written["max_short_side"] == 200  # the settings the figures were measured with
    assert written["training"]["recipe"]["holdout"] == []  # the rest of the config kept
    assert validated_classes(written["metrics"]) == {
        "limestone": {"real_iou": 0.9, "real_pixels": 50},
        "sandstone": {"real_iou": 0.5, "real_pixels": 400},
    }

    held_out = json.loads(json.dumps(everything))
    held_out["training"]["recipe"]["holdout"] = ["p0"]
    (model / "config.json").write_text(json.dumps(held_out))
    with pytest.raises(ValueError, match="held out p0"):
        attach(report(out), model, shipped, str(out), 5)
    elsewhere = json.loads(json.dumps(everything))
    elsewhere["training"]["recipe"] |= {"threads": 16, "val_every": 1000}  # how it ran, not what it trained
    (model / "config.json").write_text(json.dumps(elsewhere))
    assert attach(report(out), model, shipped, str(out), 5)["per_class"]["sandstone"]["iou"] == pytest.approx(0.5)
    other = json.loads(json.dumps(everything))
    other["training"]["recipe"]["lr"] = 0.01
    (model / "config.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="another recipe"):
        attach(report(out), model, shipped, str(out), 5)
    (model / "config.json").write_text(json.dumps(everything))
    (shipped / "config.json").write_text(json.dumps(ModelConfig(**SMALL_MODEL, **(settings | {"scales": [1.0]})).to_dict()))
    with pytest.raises(ValueError, match="rescore --settings-from"):
        attach(report(out), model, shipped, str(out), 5)
    with pytest.raises(SystemExit):  # the command says so in a sentence
        crossval_main(["attach", "--out", str(out), "--model", str(model), "--settings-from", str(shipped)])
    assert attach(report(out), model, None, str(out), 5)["rock_vs_background_iou"] == pytest.approx(0.85)  # the folds' own settings


def test_seen_scores_each_fold_s_photos_with_one_model_as_validation_judges_them(tmp_path):
    from pipelines.model import ModelConfig, build_network, load_checkpoint, save_checkpoint
    from tests.conftest import SMALL_MODEL, labelled_folder
    from training.crossval import main as crossval_main
    from training.crossval import seen
    from training.datasets import judged_labels, load_folder
    from training.train import validate_model

    torch.manual_seed(0)
    network = build_network(ModelConfig(**SMALL_MODEL))
    with torch.no_grad():  # sharpened, an untrained network's answer follows the pixels
        network.segmentation_head[0].weight *= 100
    save_checkpoint(tmp_path / "model", ModelConfig(**SMALL_MODEL), network)
    data = labelled_folder(tmp_path / "data", ("a0", "a1", "b0", "b1"))
    photos = [{"id": i, "subset": i[0], "label_quality": "partial" if i == "b1" else "complete"} for i in ("a0", "a1", "b0", "b1")]
    (data / "manifest.json").write_text(json.dumps({"photos": photos}))

    fitted = seen(tmp_path / "model", data, k=2)
    assert [row["photos"] for row in fitted["folds"].values()] == make_folds(photo_sources(data), 2)
    # fold by fold, the figures of validation on those photos, the partial one judged as validation judges it
    model = load_checkpoint(tmp_path / "model", engine="torch")
    for row in fitted["folds"].values():
        items = [judged_labels(item, item.name == "b1") for item in load_folder(data, names=set(row["photos"]))]
        expected = validate_model(model, items, [])["real_holdout"]["rock_vs_background_iou"]
        assert row["rock_vs_background_iou"] == pytest.approx(expected)
    values = [row["rock_vs_background_iou"] for row in fitted["folds"].values()]
    assert values[0] != values[1]  # the same photo, judged whole in one fold and partially in the other
    assert fitted["rock_vs_background_iou"] == {"mean": pytest.approx(sum(values) / 2), "min": min(values)}

    crossval_main(["seen", "--data", str(data), "--model", str(tmp_path / "model"), "--k", "2", "--json", str(tmp_path / "seen.json")])
    assert json.loads((tmp_path / "seen.json").read_text())["folds"]["fold0"]["photos"] == fitted["folds"]["fold0"]["photos"]
