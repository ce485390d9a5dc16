from pathlib import Path

import numpy as np
import pytest

from pipelines.decode import decode_image
from pipelines.gate import GATE_SIZE, GateBank, GateEncoder, gate_views

DATA = Path(__file__).resolve().parents[1] / "data"
MODEL = Path(__file__).resolve().parents[2] / "models" / "lithoseg-default"


@pytest.mark.parametrize("shape,count", [((300, 400), 1), ((154, 1600), 5), ((40000, 1500), 5), ((100, 160), 3), ((5, 5), 1)])
def test_views_are_gate_sized_and_follow_long_scans(shape, count):
    views = gate_views(np.zeros((*shape, 3), np.uint8))
    assert len(views) == count
    assert all(v.shape == (GATE_SIZE, GATE_SIZE, 3) and v.dtype == np.uint8 for v in views)


@pytest.fixture(scope="module")
def gate():
    bank = GateBank.load(MODEL)
    assert bank is not None, "the shipped checkpoint carries its gate bank"
    return GateEncoder(), bank


def score(gate, name, exclude=None):
    encoder, bank = gate
    image = decode_image((DATA / name).read_bytes(), 100_000_000)
    return bank.score(encoder.embed(gate_views(image)), exclude=exclude)


def test_a_core_scan_is_accepted_even_with_its_own_photo_left_out_of_the_bank(gate):
    _, bank = gate
    assert score(gate, "cc05.jpg", exclude="cc05") >= bank.threshold


@pytest.mark.parametrize("name", ["brick.jpg", "chelsea.jpg"])
def test_pictures_that_are_not_cores_are_rejected(gate, name):
    _, bank = gate
    assert score(gate, name) < bank.threshold


def test_bank_round_trip(tmp_path):
    bank = GateBank(np.eye(4, dtype=np.float16), np.array(["a", "a", "b", "b"]), 0.5)
    bank.save(tmp_path)
    loaded = GateBank.load(tmp_path)
    assert loaded is not None and loaded.threshold == 0.5
    query = np.array([[1.0, 0, 0, 0]], np.float32)
    assert loaded.score(query) == pytest.approx(1 / 3)  # mean of the 3 nearest: 1, 0, 0
    assert GateBank.load(tmp_path / "nowhere") is None
