"""Registering a box photo's segmentation to depth: columns, intervals, CSV and LAS."""

from __future__ import annotations

import io

import lasio
import numpy as np
import pytest

from pipelines.classes import default_class_table
from pipelines.depth import NO_CORE, DepthSpec, depth_log, find_bands, to_csv, to_las
from pipelines.errors import InvalidParameterError

TABLE = default_class_table()


def box(columns: int = 5, height: int = 400, width: int = 500) -> np.ndarray:
    """A core box seen from above: `columns` vertical columns of core between background dividers;
    in column k, sandstone (1) down to 40 % of its length, then limestone (5), with a gap of
    missing core at 70-75 %."""
    ids = np.zeros((height, width), np.uint8)
    edges = np.linspace(0, width, columns + 1).astype(int)
    for left, right in zip(edges[:-1], edges[1:], strict=True):
        inner = slice(left + 8, right - 8)
        ids[20:380, inner] = 1
        ids[20 + int(0.4 * 360) : 380, inner] = 5
        ids[20 + int(0.70 * 360) : 20 + int(0.75 * 360), inner] = 0
    return ids


def test_columns_are_found_between_dividers():
    bands, found = find_bands(box() != 0, None)
    assert found == 5 and len(bands) == 5
    assert all(a < b for a, b in bands) and [b for _, b in bands] == sorted(b for _, b in bands)


def test_a_given_count_the_rock_does_not_show_splits_the_rock_evenly():
    bands, found = find_bands(box(columns=2) != 0, 4)
    assert found == 2 and len(bands) == 4


def test_intervals_are_ordered_contiguous_per_column_and_span_the_box():
    confidence = np.full((400, 500), 200, np.uint8)
    log = depth_log(box(), confidence, DepthSpec(3978, 3988, "ft"), TABLE)
    assert log["columns_found"] == log["columns_used"] == 5
    intervals = log["intervals"]
    assert intervals[0]["from"] == 3978 and intervals[-1]["to"] == 3988
    for column in range(1, 6):
        rows = [r for r in intervals if r["column"] == column]
        assert rows[0]["from"] == pytest.approx(3978 + 2 * (column - 1)) and rows[-1]["to"] == pytest.approx(3978 + 2 * column)
        assert all(a["to"] == b["from"] for a, b in zip(rows, rows[1:], strict=False))  # contiguous
        assert [r["class"] for r in rows] == ["sandstone", "limestone", NO_CORE, "limestone"]
        sandstone, limestone = rows[0], rows[1]
        assert sandstone["to"] == pytest.approx(3978 + 2 * (column - 1) + 0.8, abs=0.02)  # 40 % of 2 ft
        assert limestone["confidence"] == pytest.approx(200 / 255, abs=1e-3) and rows[2]["confidence"] is None
    assert [r["from"] for r in intervals] == sorted(r["from"] for r in intervals)


def test_rows_layout_reads_top_to_bottom():
    log = depth_log(box().T.copy(), None, DepthSpec(100, 105, "m", columns=5, layout="rows"), TABLE)
    assert log["columns_used"] == 5 and log["intervals"][0]["from"] == 100 and log["intervals"][-1]["to"] == 105


def test_a_column_without_core_is_one_no_core_interval():
    ids = box()
    ids[:, 200:300] = 0  # the middle tray is empty
    log = depth_log(ids, None, DepthSpec(0, 10, "m", columns=5), TABLE)
    middle = [r for r in log["intervals"] if r["column"] == 3]
    assert middle == [{"column": 3, "from": 4.0, "to": 6.0, "class": NO_CORE, "class_id": 0, "confidence": None, "rock_fraction": 0.0}]


def test_a_divider_the_network_half_calls_rock_still_separates_columns():
    ids = box()
    ids[20:380, 92:108] = 1  # the first divider two-thirds "rock"
    ids[20:380:3, 92:108] = 0
    assert find_bands(ids != 0, None)[1] == 5


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"top_depth": "10"}, "both top_depth and bottom_depth"),
        ({"top_depth": "10", "bottom_depth": "5"}, "greater than top_depth"),
        ({"top_depth": "a", "bottom_depth": "5"}, "top_depth must be a number"),
        ({"top_depth": "1", "bottom_depth": "inf"}, "finite"),
        ({"top_depth": "1", "bottom_depth": "2", "depth_unit": "yards"}, "m or ft"),
        ({"top_depth": "1", "bottom_depth": "2", "columns": "0"}, "whole number from 1"),
        ({"top_depth": "1", "bottom_depth": "2", "layout": "spiral"}, "columns (read left to right) or rows"),
        ({"columns": "5"}, "only apply with top_depth and bottom_depth"),
    ],
)
def test_bad_depth_fields_are_refused_with_a_sentence(fields, message):
    with pytest.raises(InvalidParameterError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        DepthSpec.parse(fields)
    sentence = str(caught.value)
    assert sentence[0].isupper() and sentence.endswith(".")


def test_no_depth_is_none_and_a_full_one_parses():
    assert DepthSpec.parse({}) is None
    spec = DepthSpec.parse({"top_depth": "3978", "bottom_depth": "3988", "depth_unit": "FT", "columns": "5"})
    assert spec == DepthSpec(3978.0, 3988.0, "ft", 5, "columns") and DepthSpec.from_dict(spec.to_dict()) == spec


def test_csv_and_las_carry_the_intervals():
    log = depth_log(box(), None, DepthSpec(3978, 3988, "ft"), TABLE)
    lines = to_csv(log).splitlines()
    assert lines[0] == "from,to,unit,lithology,confidence" and len(lines) == 1 + len(log["intervals"])
    assert lines[1].startswith("3978.0,") and ',ft,"sandstone",' in lines[1]
    las = lasio.read(io.StringIO(to_las(log, TABLE)))
    assert las.well["STRT"].value == 3978 and las.well["STOP"].value == 3988 and las.curves["LITH"].unit == ""
    depth, lith = las["DEPT"], las["LITH"]
    assert lith[0] == 1 and lith[np.searchsorted(depth, 3979.0)] == 5  # sandstone at the top, limestone below 40 %
    assert las.params["L05"].value == "limestone"
