"""The project as a package: one version, every import declared, every declared dependency pinned."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

import pipelines

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("deployments", "pipelines", "storage", "training", "lithoseg_client")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return canonical(re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0])


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def declared() -> set[str]:
    meta = project()
    return {requirement_name(r) for r in meta["dependencies"]} | {requirement_name(r) for r in meta["optional-dependencies"]["test"]}


def pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.txt pins exact versions; {line!r} does not"
            pins[requirement_name(name)] = version
    return pins


def imported_top_level() -> set[str]:
    """Every module the code imports, at the top of a file or inside a function."""
    names = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - set(PACKAGES) - {"__future__"}


def test_every_declared_dependency_is_pinned_in_the_lock():
    missing = sorted(declared() - set(pinned()))
    assert not missing, f"declared in pyproject.toml but not pinned in requirements.txt: {missing}"


def test_every_third_party_import_is_declared():
    distributions = packages_distributions()
    undeclared = []
    for module in sorted(imported_top_level()):
        owners = {canonical(d) for d in distributions.get(module, [])}
        if not owners & declared():
            undeclared.append(f"{module} (from {', '.join(sorted(owners)) or 'no installed distribution'})")
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_one_version_string():
    assert "version" in project()["dynamic"] and "version" not in project()
    assert re.fullmatch(r"\d+\.\d+\.\d+", pipelines.__version__)
    written = [p for p in ROOT.glob("*/*.py") if pipelines.__version__ in p.read_text() and p.name != "__init__.py"]
    assert not written, f"the version is written again in {written}; import pipelines.__version__"


def test_every_package_and_subpackage_is_in_the_wheel():
    from fnmatch import fnmatch

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = [".".join(p.parent.relative_to(ROOT).parts) for name in PACKAGES for p in (ROOT / name).rglob("__init__.py")]
    assert set(PACKAGES) <= set(packages)
    missing = [p for p in packages if not any(fnmatch(p, pattern) for pattern in include)]
    assert not missing, f"packages left out of the wheel: {missing}"


def test_the_class_table_and_the_model_ship_with_the_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "classes.json" in config["package-data"]["pipelines"]
    shipped = [f for files in config["data-files"].values() for f in files]
    for name in ("config.json", "model.safetensors", "gate.npz"):
        assert f"models/lithoseg-default/{name}" in shipped
    assert project()["scripts"]["lithoseg"] == "deployments.cli:main"


@pytest.mark.slow
def test_the_built_wheel_holds_the_static_files_the_class_table_and_the_model(tmp_path):
    """`pip wheel .` for real: what a `pip install .` would put on a machine."""
    import subprocess
    import sys
    import zipfile

    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = tmp_path.glob("lithoseg-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("pipelines/classes.json", "deployments/static/app/index.html", "deployments/static/app/app.js",
                     "deployments/static/app/app.css", "deployments/static/swagger-ui/swagger-ui-bundle.js"):  # fmt: skip
        assert expected in names, expected
    data = {n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n}
    for name in ("config.json", "model.safetensors", "gate.npz"):
        assert f"share/lithoseg/models/lithoseg-default/{name}" in data, sorted(data)
    assert "share/lithoseg/serve_config.yaml" in data
