import json
from pathlib import Path

from pipelines.classes import CLASS_TABLE_PATH, default_class_table

SHARED = Path(__file__).resolve().parents[3] / "shared" / "spec" / "classes.json"


def test_class_table():
    table = default_class_table()
    assert len(table) == 12 and table.classes[0].slug == "background"
    assert table.classes[3].name == "mudstone" and table.classes[3].color == (152, 223, 138)
    assert table.palette.shape == (12, 3)


def test_project_copy_matches_the_canonical_table():
    if not SHARED.is_file():
        return  # a user's clone has no ../shared; the copy is what counts there
    assert json.loads(CLASS_TABLE_PATH.read_text())["classes"] == json.loads(SHARED.read_text())["classes"]
