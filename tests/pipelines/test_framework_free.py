"""pipelines/ stays framework-free: no Ray, no web framework, no boto3."""

import ast
from pathlib import Path

import pytest

FORBIDDEN = ("ray", "starlette", "fastapi", "boto3", "botocore", "deployments", "storage")
MODULES = sorted((Path(__file__).resolve().parents[2] / "pipelines").glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_framework_imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
