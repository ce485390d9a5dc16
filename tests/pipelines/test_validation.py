"""Which classes the shipped checkpoint was validated on with real photos, and the result's flags."""

from deployments.settings import DEFAULT_MODEL
from pipelines.model import read_config
from pipelines.validation import class_validation, validated_classes


def test_the_shipped_model_is_validated_on_the_three_classes_its_real_photos_hold():
    validated = validated_classes(read_config(DEFAULT_MODEL).metrics)
    assert set(validated) == {"sandstone", "limestone", "interlayered sandstones and mudstones"}
    assert all(0 < v["real_iou"] <= 1 and v["real_pixels"] > 0 for v in validated.values())


def test_a_result_flags_each_detected_class():
    validated = {"sandstone": {"real_iou": 0.43, "real_pixels": 10}}
    flags = class_validation(["sandstone", "dolomite"], validated)
    assert flags == {
        "sandstone": {"validated_on_real_photos": True, "real_iou": 0.43},
        "dolomite": {"validated_on_real_photos": False, "real_iou": None},
    }
    assert validated_classes({}) == {} and class_validation([], validated) == {}
