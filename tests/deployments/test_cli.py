"""The `lithoseg` command's dispatch (the commands themselves are tested where they live)."""

from __future__ import annotations

import importlib

import pytest

import pipelines
from deployments import cli


def test_version_and_help_need_no_heavy_imports(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"lithoseg {pipelines.__version__}"
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)


def test_an_unknown_command_is_refused_with_the_list(capsys):
    assert cli.main(["segmnt"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'segmnt'" in err and "serve" in err


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_names_a_module_with_a_main(command):
    module = importlib.import_module(cli.COMMANDS[command][0])
    assert callable(module.main)


def test_arguments_reach_the_command(monkeypatch):
    seen = []
    monkeypatch.setattr(importlib.import_module("training.synthetic"), "main", lambda argv: seen.append(argv))
    assert cli.main(["synth", "--count", "3"]) == 0
    assert seen == [["--count", "3"]]
