import math
import random

from pipelines.drift import DriftMonitor, observation, shift_z


def test_shift_z_is_zero_for_the_same_sample_and_large_for_a_clear_shift():
    rng = random.Random(0)
    same = [rng.gauss(0.5, 0.05) for _ in range(100)]
    assert shift_z(same, same) == 0.0
    moved = [v + 0.1 for v in same]
    assert shift_z(same, moved) > 8


def test_constant_values_do_not_make_every_change_an_alarm():
    # spread floored: a reference of identical scores and a current window 0.01 away is not a shift
    assert abs(shift_z([0.9] * 50, [0.91] * 50)) < 4


def test_the_monitor_alarms_only_after_a_real_shift():
    rng = random.Random(1)
    monitor = DriftMonitor(window=50, threshold=4.0, min_count=20)
    for _ in range(120):  # same distribution throughout: no alarm
        monitor.add({"core_score": rng.gauss(0.8, 0.05), "rock_fraction": rng.gauss(0.4, 0.05)})
    report = monitor.report()
    assert report["reference_complete"] and not report["alarm"] and report["alarms_total"] == 0
    for _ in range(50):  # a new camera: darker, lower scores
        monitor.add({"core_score": rng.gauss(0.55, 0.05), "rock_fraction": rng.gauss(0.4, 0.05)})
    report = monitor.report()
    assert report["alarm"] and report["alarms"] == ["core_score"]
    assert report["statistics"]["core_score"]["z"] < -4 and not report["statistics"]["rock_fraction"]["alarm"]
    assert report["alarms_total"] == 1
    monitor.reset()
    assert monitor.report()["n"] == 0 and not monitor.report()["alarm"]


def test_no_alarm_before_the_current_window_is_distinct_from_the_reference():
    monitor = DriftMonitor(window=50, min_count=5)
    for i in range(50):
        monitor.add({"core_score": 0.1 if i < 25 else 0.9})
    assert math.isnan(monitor._z("core_score")) and not monitor.report()["alarm"]


def test_observation_reads_a_result():
    result = {
        "core_score": 0.7,
        "mean_confidence": 0.9,
        "rock_fraction": 0.5,
        "coverage": {"background": 0.5, "sandstone": 0.4, "limestone": 0.1},
        "detected_classes": {"sandstone": [1, 2, 3], "limestone": [4, 5, 6]},
        "rejected": False,
    }
    stats = observation(result)
    assert stats == {"core_score": 0.7, "confidence": 0.9, "rock_fraction": 0.5, "coverage:sandstone": 0.8, "coverage:limestone": 0.2}
    assert observation({"core_score": 0.1, "rejected": True, "rock_fraction": 0.0}) == {"core_score": 0.1}
