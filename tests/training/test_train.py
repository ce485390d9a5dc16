import json
import re

import pytest

from pipelines.model import load_checkpoint
from tests.conftest import SMALL_FROM_SCRATCH, SMALL_MODEL, labelled_folder, train_briefly
from training.train import parse_args, train

pytestmark = pytest.mark.slow  # each test trains a network for a few steps


def test_a_few_training_steps_write_a_loadable_checkpoint(tmp_path):
    # a labelled folder in the real data's layout, made of the shipped sample
    folder = labelled_folder(tmp_path / "data")
    train_briefly(tmp_path / "run", "--data", str(folder), *SMALL_FROM_SCRATCH, steps=3)
    model = load_checkpoint(tmp_path / "run" / "checkpoint", "cpu")
    assert model.config.training["steps_done"] == 3
    assert "synthetic_holdout" in model.config.metrics
    # resumable: asking for more steps continues from the saved state
    train_briefly(tmp_path / "run", "--data", str(folder), "--resume", "--keep-checkpoints", *SMALL_FROM_SCRATCH, steps=4)
    assert load_checkpoint(tmp_path / "run" / "checkpoint", "cpu").config.training["steps_done"] == 4
    # --keep-checkpoints keeps this validation's checkpoint beside the latest one
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step-000004"]
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "step-000004", "cpu").config.training["steps_done"] == 4


def test_with_ema_the_checkpoint_holds_the_averaged_weights_not_the_last_step(tmp_path):
    import torch
    from safetensors.torch import load_file

    train_briefly(tmp_path / "run", "--ema", "0.5", *SMALL_FROM_SCRATCH, steps=3)
    shipped = load_file(str(tmp_path / "run" / "checkpoint" / "model.safetensors"))
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=False)
    averaged = {k.removeprefix("module."): v for k, v in state["averaged"].items() if k.startswith("module.")}
    name = next(k for k in shipped if k.endswith("weight") and shipped[k].is_floating_point())
    assert torch.equal(shipped[name], averaged[name])
    assert not torch.equal(shipped[name], state["network"][name])  # the raw weights moved on past the average


def test_a_run_started_from_a_checkpoint_names_that_checkpoint_and_its_version(tmp_path):
    from pipelines.model import ModelConfig, build_network, save_checkpoint

    start = ModelConfig(**SMALL_MODEL, name="lithoseg-test", version="7")
    save_checkpoint(tmp_path / "start", start, build_network(start))
    train_briefly(tmp_path / "run", "--init", str(tmp_path / "start"), "--model-json", json.dumps(SMALL_MODEL))
    training = load_checkpoint(tmp_path / "run" / "checkpoint", "cpu").config.training
    assert training["initialised_from"] == {"path": str(tmp_path / "start"), "name": "lithoseg-test", "version": "7"}


def test_a_run_started_from_a_checkpoint_keeps_its_content_gate(tmp_path):
    import numpy as np

    from pipelines.gate import BANK_FILE, GateBank
    from pipelines.model import ModelConfig, build_network, save_checkpoint

    start = ModelConfig(**SMALL_MODEL)
    save_checkpoint(tmp_path / "start", start, build_network(start))
    GateBank(np.eye(3, dtype=np.float16), np.array(["p", "q", "r"]), 0.42).save(tmp_path / "start")
    train_briefly(tmp_path / "run", "--init", str(tmp_path / "start"), "--keep-checkpoints", val_synthetic=0)
    bank = (tmp_path / "start" / BANK_FILE).read_bytes()  # embeddings of the fixed ImageNet encoder: still valid
    assert (tmp_path / "run" / "checkpoint" / BANK_FILE).read_bytes() == bank
    assert (tmp_path / "run" / "checkpoints" / "step-000001" / BANK_FILE).read_bytes() == bank


def test_a_run_started_from_a_checkpoint_keeps_its_architecture(tmp_path):
    from pipelines.model import ModelConfig, build_network, save_checkpoint

    start = ModelConfig(
        architecture="FPN",
        architecture_kwargs={"decoder_pyramid_channels": 32, "decoder_segmentation_channels": 32},
        tile_size=128,
        tile_overlap=32,
        version="3",
    )
    save_checkpoint(tmp_path / "start", start, build_network(start))
    train_briefly(tmp_path / "run", "--init", str(tmp_path / "start"), "--model-json", json.dumps({"tile_overlap": 16}))
    config = load_checkpoint(tmp_path / "run" / "checkpoint", "cpu").config
    assert (config.architecture, config.architecture_kwargs["decoder_pyramid_channels"], config.tile_size) == ("FPN", 32, 128)
    assert config.tile_overlap == 16 and config.version != "3"


def test_photos_larger_than_an_inherited_working_size_are_trained_on_at_it(tmp_path, capsys):
    from pipelines.model import ModelConfig, build_network, save_checkpoint

    # the start checkpoint segments photos at a shorter side of at most 100 px; cc05 is 154 x 1,600
    start = ModelConfig(**SMALL_MODEL, max_short_side=100)
    save_checkpoint(tmp_path / "start", start, build_network(start))
    folder = labelled_folder(tmp_path / "data")
    train_briefly(tmp_path / "run", "--init", str(tmp_path / "start"), "--data", str(folder))
    out = capsys.readouterr().out
    assert "1 training photo(s) scaled down to a shorter side of 100 px, as the service will segment them: cc05" in out
    assert re.search(r"step 1/1 loss [0-9.]+ lr \S+ [0-9.]+ crops/s, about 0 s left", out)  # progress, with the time left
    assert load_checkpoint(tmp_path / "run" / "checkpoint", "cpu").config.max_short_side == 100


def test_the_rock_logit_is_the_log_odds_of_any_rock_class():
    import torch

    from training.metrics import IGNORE_ID
    from training.train import rock_logit, rock_target

    logits = torch.randn(2, 12, 4, 5)
    probabilities = logits.softmax(dim=1)
    rock = probabilities[:, 1:].sum(dim=1)
    assert torch.allclose(rock_logit(logits), torch.log(rock / probabilities[:, 0]), atol=1e-5)
    masks = torch.tensor([[[0, 3, IGNORE_ID, 11]]])
    assert rock_target(masks).tolist() == [[[0, 1, IGNORE_ID, 1]]]


def test_the_rock_loss_trains(tmp_path):
    train_briefly(tmp_path / "run", "--rock-loss", "1", *SMALL_FROM_SCRATCH, steps=2)
    training = load_checkpoint(tmp_path / "run" / "checkpoint", "cpu").config.training
    assert training["steps_done"] == 2 and training["recipe"]["rock_loss"] == 1


def test_hard_pixel_cross_entropy_averages_the_hardest_labelled_pixels_only():
    import torch

    from training.metrics import IGNORE_ID
    from training.train import hard_pixel_cross_entropy

    torch.manual_seed(0)
    logits = torch.randn(2, 12, 6, 5)
    masks = torch.randint(0, 12, (2, 6, 5))
    masks[0, :2] = IGNORE_ID  # 10 of 60 pixels unlabelled
    every = torch.nn.CrossEntropyLoss(ignore_index=IGNORE_ID)(logits, masks)
    assert torch.allclose(hard_pixel_cross_entropy(logits, masks, 0.0), every)
    assert torch.allclose(hard_pixel_cross_entropy(logits, masks, 1.0), every)
    per_pixel = torch.nn.functional.cross_entropy(logits, masks, ignore_index=IGNORE_ID, reduction="none")[masks != IGNORE_ID]
    hardest = per_pixel.sort(descending=True).values[:12]  # a quarter of the 50 labelled pixels, rounded down
    assert torch.allclose(hard_pixel_cross_entropy(logits, masks, 0.25), hardest.mean())
    assert hard_pixel_cross_entropy(logits, masks, 0.25) > every
    # with a threshold, every pixel whose labelled class is less likely than it counts too (at least the quarter)
    probability = torch.exp(-per_pixel)
    unsure = per_pixel[probability < 0.5]
    assert len(unsure) > 12
    assert torch.allclose(hard_pixel_cross_entropy(logits, masks, 0.25, threshold=0.5), unsure.mean())
    assert torch.allclose(hard_pixel_cross_entropy(logits, masks, 0.25, threshold=1e-9), hardest.mean())
    nothing = torch.full_like(masks, IGNORE_ID)
    empty = hard_pixel_cross_entropy(logits.requires_grad_(), nothing, 0.25)
    assert empty.item() == 0.0
    empty.backward()
    assert logits.grad is not None and not logits.grad.any()


def test_the_hard_pixel_loss_trains(tmp_path):
    train_briefly(tmp_path / "run", "--hard-pixels", "0.25", "--hard-pixel-threshold", "0.7", *SMALL_FROM_SCRATCH, steps=2)
    training = load_checkpoint(tmp_path / "run" / "checkpoint", "cpu").config.training
    assert training["steps_done"] == 2 and training["recipe"]["hard_pixels"] == 0.25
    assert training["recipe"]["hard_pixel_threshold"] == 0.7


def test_bf16_autocast_and_worn_cardboard_train_on_a_cpu(tmp_path):
    import torch

    train_briefly(tmp_path / "run", "--bf16", "--cardboard-fraction", "1", *SMALL_FROM_SCRATCH, steps=2)
    model = load_checkpoint(tmp_path / "run" / "checkpoint", "cpu")
    recipe = model.config.training["recipe"]
    assert recipe["bf16"] is True and recipe["cardboard_fraction"] == 1
    # the weights stay float32 (autocast lowers the forward pass's arithmetic, not the parameters) and finite
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.network.parameters())


def test_copy_paste_puts_one_real_photo_s_rock_on_another_and_only_when_asked(tmp_path):
    import numpy as np

    from training.datasets import LabelledImage
    from training.train import CropStream, TrainConfig

    dark, light = np.full((64, 64, 3), 20, np.uint8), np.full((64, 64, 3), 230, np.uint8)
    rock = np.zeros((64, 64), np.uint8)
    rock[16:48, 16:48] = 1
    photos = [LabelledImage("dark", dark, np.zeros((64, 64), np.uint8)), LabelledImage("light", light, rock)]

    def crops(fraction: float) -> list:
        config = TrainConfig(out="", crop=64, real_fraction=1.0, copy_paste_fraction=fraction, seed=3)
        stream = iter(CropStream(photos, config, start_step=0))
        return [next(stream) for _ in range(40)]

    def mixed(crop) -> bool:  # both photos' pixels in one crop (the jitter keeps the two far apart)
        image = crop[0].numpy().mean(axis=2)
        return bool((image < 100).any() and (image > 150).any())

    without, every = crops(0.0), crops(1.0)
    assert not any(mixed(c) for c in without)
    # with every real crop pasted onto, the dark photo's crops that drew the light one carry its rock and label
    pasted = [c for c in every if mixed(c)]
    assert pasted and all(((c[0].numpy().mean(axis=2) > 150) == (c[1].numpy() == 1)).all() for c in pasted)


def test_the_time_left_reads_in_seconds_minutes_or_hours():
    from training.train import _duration

    assert [_duration(t) for t in (12.4, 59, 61, 7 * 60 + 20, 3599, 2 * 3600 + 5 * 60)] == [
        "12 s",
        "59 s",
        "1 min",
        "7 min",
        "1 h 00 min",
        "2 h 05 min",
    ]


def test_minutes_fixes_the_schedule_from_the_steady_rate(tmp_path, capsys):
    from training.train import MINUTES_PROBE

    config = parse_args(["--out", str(tmp_path / "run"), "--minutes", "0.01", "--steps", "100000", "--batch-size", "1", "--crop", "64",
                         "--val-synthetic", "1", "--val-every", "100000", "--model-json", json.dumps(SMALL_MODEL)])  # fmt: skip
    train(config)
    assert MINUTES_PROBE[1] < config.steps < 100000  # set from the probe, then trained to the end
    assert f"so {config.steps} steps" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "run" / "checkpoint", "cpu").config.training["steps_done"] == config.steps
