"""The `lithoseg` command: one entry point for the project's tools.

    lithoseg segment|batch|status|cancel ...   # the client: photos through a running service
    lithoseg serve                 # the service on LITHOSEG_HOST:LITHOSEG_PORT (what `make serve` runs)
    lithoseg cluster               # the production shape on this machine (`make cluster`)
    lithoseg train|evaluate|synth|soup|crossval|gate|engines ...   # model building, see docs/training.md
    lithoseg --version

Each subcommand hands the rest of the command line to the module that does the work, so
`lithoseg train --help` is `python -m training.train --help`. Modules are imported only when their
command runs: `lithoseg --version` does not load torch or Ray.
"""

from __future__ import annotations

import importlib
import sys

import pipelines

# command -> (module, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "segment": ("lithoseg_client.cli", "segment photos through a running service: overlay, mask and JSON per photo"),
    "batch": ("lithoseg_client.cli", "segment a folder or ZIP of photos through a running service, with a CSV report"),
    "status": ("lithoseg_client.cli", "a job's status"),
    "cancel": ("lithoseg_client.cli", "cancel a job"),
    "serve": ("deployments.local", "run the service locally (Ctrl-C stops it)"),
    "cluster": ("deployments.cluster", "run serve_config.yaml on an autoscaling multi-node Ray cluster on this machine"),
    "train": ("training.train", "train a checkpoint on labelled folders and synthetic cores"),
    "evaluate": ("training.evaluate", "measure a checkpoint with the service's tiling"),
    "synth": ("training.synthetic", "write a synthetic labelled dataset"),
    "soup": ("training.soup", "average checkpoints fine-tuned from the same weights"),
    "crossval": ("training.crossval", "cross-validate a training recipe on the real photos"),
    "gate": ("pipelines.gate", "build or check a checkpoint's content gate"),
    "engines": ("training.engine_checks", "check a reduced-precision inference engine on held-out photos"),
}


def usage() -> str:
    """The `lithoseg` command's help: its subcommands and what each does."""
    width = max(len(c) for c in COMMANDS)
    lines = [f"usage: lithoseg COMMAND [ARGS...]   (lithoseg {pipelines.__version__})", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "`lithoseg COMMAND --help` shows a command's own options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run one `lithoseg` subcommand: serve, cluster, train, evaluate, synth here; the client's in lithoseg_client.cli."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] == "--version":
        print(f"lithoseg {pipelines.__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"lithoseg: unknown command {command!r}.\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    if COMMANDS[command][0] == "lithoseg_client.cli":  # the client's commands parse their own name
        return int(module.main([command, *rest]))
    if command == "serve":  # deployments.local reads its settings from the environment, not argv
        if rest:
            print("lithoseg serve takes no arguments; configure it with LITHOSEG_* variables (docs/configuration.md).", file=sys.stderr)
            return 2
        module.main()
        return 0
    module.main(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
