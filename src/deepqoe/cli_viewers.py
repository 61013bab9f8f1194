"""``deepqoe adapt-viewer``: k-shot adaptation of a viewer-aware model to a new viewer
(:func:`deepqoe.viewers.adapt_viewer`); the handler computes nothing itself."""

from __future__ import annotations

import argparse

from deepqoe.cli import ExitCode, UsageError, print_json, status


def _cmd_adapt_viewer(args) -> int:
    from deepqoe.persistence import load_model
    from deepqoe.viewers import adapt_viewer, read_viewer_ratings, save_adapted

    if args.k is not None and args.k < 1:
        raise UsageError(f"--k must be at least 1, got {args.k}")
    from deepqoe.io import check_output_dir

    check_output_dir(args.out)
    X, y, viewer = read_viewer_ratings(args.model, args.ratings, args.viewer)
    new = adapt_viewer(load_model(args.model), X, y, viewer, args.k)
    save_adapted(new, args.out)
    k = new.adapted_viewers_[-1]["k"]
    status(args, f"adapted to viewer {viewer!r} on {k} of {len(X)} rating(s); model saved to {args.out} "
                 "(every other viewer's predictions unchanged)")
    if args.json:
        print_json(new.adapted_viewers_[-1])
    return ExitCode.OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("adapt-viewer", help="add a new viewer to a viewer-aware model from k of their ratings")
    p.add_argument("model", help="model directory or shipped model name (with a viewer input, e.g. upec-qoe-lab)")
    p.add_argument("ratings", help="CSV or Parquet: the viewer's rows (the model's input columns and its target "
                                   "column, e.g. mos), in the order to use")
    p.add_argument("--viewer", help="the new viewer's id (default: the table's one id in the viewer column)")
    p.add_argument("--k", type=int, help="use the first K ratings (default: all; more than the table has is an "
                                         "error)")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--json", action="store_true", help="what was adapted, as JSON on standard output")
    p.set_defaults(func=_cmd_adapt_viewer)
