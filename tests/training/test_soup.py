import pytest
import torch

from pipelines.errors import CheckpointError
from pipelines.model import ModelConfig, build_network, load_checkpoint, save_checkpoint
from tests.conftest import SMALL_MODEL
from training.soup import average_weights
from training.soup import main as soup_main


def _checkpoint(path, seed, **overrides):
    torch.manual_seed(seed)
    config = ModelConfig(**(SMALL_MODEL | overrides), version=f"v{seed}")
    network = build_network(config)
    with torch.no_grad():  # distinct BatchNorm statistics too, as two training runs would leave
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    save_checkpoint(path, config, network)
    return network.state_dict()


def test_the_soup_is_the_mean_of_its_ingredients_and_loads_as_a_checkpoint(tmp_path):
    first = _checkpoint(tmp_path / "a", 1)
    second = _checkpoint(tmp_path / "b", 2)
    third = _checkpoint(tmp_path / "c", 3)
    soup_main([str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c"), "--out", str(tmp_path / "soup"), "--version", "5"])
    soup = load_checkpoint(tmp_path / "soup", "cpu")
    state = soup.network.state_dict()
    for name, tensor in first.items():
        if tensor.is_floating_point():
            torch.testing.assert_close(state[name], (tensor + second[name] + third[name]) / 3)
        else:
            assert torch.equal(state[name], tensor)
    conv = next(k for k in first if k.endswith("conv_stem.weight"))
    assert not torch.equal(state[conv], first[conv])  # really averaged, not copied
    assert soup.config.version == "5"
    assert [i["version"] for i in soup.config.training["soup"]["ingredients"]] == ["v1", "v2", "v3"]


def test_the_soup_keeps_the_content_gate_of_the_first_ingredient_that_has_one(tmp_path):
    import numpy as np

    from pipelines.gate import BANK_FILE, GateBank

    _checkpoint(tmp_path / "a", 1)
    _checkpoint(tmp_path / "b", 2)
    GateBank(np.eye(3, dtype=np.float16), np.array(["p", "q", "r"]), 0.42).save(tmp_path / "b")
    soup_main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "soup")])
    assert (tmp_path / "soup" / BANK_FILE).read_bytes() == (tmp_path / "b" / BANK_FILE).read_bytes()
    soup_main([str(tmp_path / "a"), "--out", str(tmp_path / "plain")])
    assert not (tmp_path / "plain" / BANK_FILE).exists()


def test_checkpoints_of_different_networks_are_refused(tmp_path):
    _checkpoint(tmp_path / "a", 1)
    _checkpoint(tmp_path / "b", 2, tile_size=256)
    with pytest.raises(CheckpointError, match="differs .* in tile_size"):
        soup_main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "soup")])
    with pytest.raises(CheckpointError, match="different tensors"):
        average_weights([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}])
