"""The ``deepqoe`` command. Thin: it parses arguments and calls the modules that do the work.

Sub-commands live in modules named ``cli*`` beside the code they drive; each has ``register(subparsers)``,
which adds its parser(s) with ``set_defaults(func=...)``; ``func(args)`` returns the exit status. Library
code never imports these modules (the workflows they call are in :mod:`deepqoe.workflow`). A
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
    "deepqoe.cli_models",              # train, evaluate, predict, embed, models, export, finetune
    "deepqoe.experiments.cli",         # reproduce
    "deepqoe.features.video.cli",      # extract, convert-c3d-weights
    "deepqoe.sessions.cli",            # sessions (convert / features / validate)
    "deepqoe.cli_service",             # demo, serve
)


def _check_model(args) -> int:
    from deepqoe.evaluation.behaviour import main_check_model

    return main_check_model(args)


def _register_check_model(sub) -> None:
    p = sub.add_parser("check-model", help="check that a session model behaves like QoE (table of relations)",
                       description="Check a session model on random perturbed sessions (more stalls, a later "
                                   "start, more switches, lower quality must not raise the score, ...). Exit 0 "
                                   "if nothing is violated, 1 otherwise.")
    p.add_argument("model", help="a model directory or a shipped model's name (e.g. streaming)")
    p.add_argument("--n-sessions", type=int, default=1000, help="random sessions to perturb (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--json", action="store_true", help="the report as JSON on standard output")
    p.set_defaults(func=_check_model)


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
    _register_check_model(sub)
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
