"""The layering: `pipelines/` (the serving path's building blocks) and `training/` (model building)
are framework-free (no Ray, no web framework, no boto3), and the serving path does not depend on
the model-building tools."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("ray", "starlette", "fastapi", "boto3", "botocore", "deployments", "storage")
# pipelines/engines.py draws its build-time parity tiles from the synthetic core generator
SERVING_MAY_IMPORT = {"pipelines/engines.py": {"training.synthetic"}}
MODULES = sorted([*(ROOT / "pipelines").glob("*.py"), *(ROOT / "training").glob("*.py")])


def imported(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_framework_imports(path):
    for name in imported(path):
        assert name.split(".")[0] not in FRAMEWORKS, f"{path.name} imports {name}"


@pytest.mark.parametrize("path", [p for p in MODULES if p.parent.name == "pipelines"], ids=lambda p: p.name)
def test_the_serving_path_does_not_import_training(path):
    allowed = SERVING_MAY_IMPORT.get(f"pipelines/{path.name}", set())
    for name in imported(path):
        assert name.split(".")[0] != "training" or name in allowed, f"pipelines/{path.name} imports {name}"
