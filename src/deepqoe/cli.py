"""The ``deepqoe`` command. Thin: it parses arguments and calls the modules that do the work.

Sub-commands live beside the code they drive; each such module has ``register(subparsers)``, which adds
its parser(s) with ``set_defaults(func=...)``; ``func(args)`` returns the exit status. A
:class:`~deepqoe.errors.DeepQoEError` is printed as one line (no traceback) with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from deepqoe import __version__
from deepqoe.errors import DeepQoEError

# Modules that add sub-commands, in the order they appear in --help.
COMMAND_MODULES = (
    "deepqoe.commands",              # train, evaluate, predict, embed
    "deepqoe.experiments.command",   # reproduce
    "deepqoe.features.video.command",  # extract
    "deepqoe.sessions.command",      # sessions (convert / features)
    "deepqoe.service_command",       # serve, export, finetune, demo
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepqoe", description="Predict video Quality of Experience (QoE) with DeepQoE models.")
    parser.add_argument("--version", action="version", version=f"deepqoe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:  # a part not built (or an optional dependency missing)
            if e.name and (e.name == name or name.startswith(e.name + ".") or e.name.startswith(name)):
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DeepQoEError as e:
        print(f"deepqoe: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepqoe: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
