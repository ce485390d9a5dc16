import numpy as np

from pipelines.classes import default_class_table
from pipelines.lithology_log import lithology_log, merge_short, runs

TABLE = default_class_table()


def test_a_scan_logs_its_intervals_along_the_long_axis():
    """A 1000 × 100 core column: sandstone, a gap (tray), limestone, then mudstone; a few stray
    lines of conglomerate inside the limestone are merged away."""
    ids = np.zeros((1000, 100), np.uint8)
    ids[0:300, 10:90] = 1  # sandstone
    ids[350:700, 10:90] = 5  # limestone
    ids[500:502, 10:90] = 8  # two stray lines
    ids[700:1000, 10:90] = 3  # mudstone
    log = lithology_log(ids, TABLE)
    assert log["axis"] == "rows" and log["length_px"] == 1000
    got = [(i["class"], i["start_px"], i["end_px"]) for i in log["intervals"]]
    assert got == [("sandstone", 0, 300), ("limestone", 350, 700), ("mudstone", 700, 1000)]
    assert log["intervals"][1]["start_fraction"] == 0.35


def test_a_wide_scan_logs_along_columns():
    ids = np.zeros((50, 400), np.uint8)
    ids[:, :200] = 2
    ids[:, 200:] = 6
    log = lithology_log(ids, TABLE)
    assert log["axis"] == "columns"
    assert [(i["class_id"], i["start_px"], i["end_px"]) for i in log["intervals"]] == [(2, 0, 200), (6, 200, 400)]


def test_no_rock_no_intervals():
    assert lithology_log(np.zeros((30, 20), np.uint8), TABLE)["intervals"] == []


def test_runs_and_merging():
    labels = np.array([1, 1, 1, 2, 1, 1, 3, 3, 3, 3])
    assert runs(labels) == [[1, 0, 3], [2, 3, 4], [1, 4, 6], [3, 6, 10]]
    assert merge_short(runs(labels), 2) == [[1, 0, 6], [3, 6, 10]]
