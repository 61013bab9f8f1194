"""``deepqoe reproduce``: re-run the DeepQoE paper's experiments on public stand-in data."""

from __future__ import annotations

from pathlib import Path

from deepqoe.cli import ExitCode, UsageError, status
from deepqoe.experiments import SECTIONS


def _sizes() -> dict:
    """The defaults the help states, read from the recipes the run uses (full run, --quick)."""
    from deepqoe.experiments.common import load_recipe

    runs, nflx = load_recipe("runs"), load_recipe("streaming_live_nflx")
    return {"ugc": (runs["full"]["ugc_splits"], runs["quick"]["ugc_splits"]),
            "splits": (nflx["splits"]["full"], nflx["splits"]["quick"]),
            "neural": (nflx["neural_splits"]["full"], nflx["neural_splits"]["quick"])}


def register(subparsers) -> None:
    sizes = _sizes()
    p = subparsers.add_parser(
        "reproduce", help="reproduce the DeepQoE paper's experiments (tables + plots) on public data",
        description="Reproduce the DeepQoE paper (ICME 2019) on public stand-in datasets read from "
                    "DEEPQOE_DATA. Writes OUT/report.md (tables and PNG plots beside it) and "
                    "OUT/results.json (every number of the report). Progress goes to standard error.")
    p.add_argument("experiments", nargs="*", metavar="EXPERIMENT",
                   help=f"which experiments to run (default: all): {', '.join(SECTIONS)}")
    p.add_argument("--quick", action="store_true",
                   help="fewer splits and epochs (a smoke run of a few minutes, for CI)")
    p.add_argument("--out", required=True, type=Path, help="output folder for report.md, results.json, plots")
    p.add_argument("--ugc-splits", type=int, default=None,
                   help="number of VIDEVAL 80/20 splits for the ugc experiment (the published protocol "
                        f"uses 100; default: {sizes['ugc'][0]} for a full run, {sizes['ugc'][1]} with --quick)")
    p.add_argument("--streaming-splits", type=int, default=None,
                   help=f"LIVE-NFLX splits for the cheap streaming methods (default: {sizes['splits'][0]}; "
                        f"{sizes['splits'][1]} with --quick)")
    p.add_argument("--streaming-neural-splits", type=int, default=None,
                   help="how many of those (the first ones) the neural streaming models run on (default: "
                        f"{sizes['neural'][0]}; {sizes['neural'][1]} with --quick)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes for independent splits")
    p.set_defaults(func=_run)


def _run(args) -> int:
    names = list(dict.fromkeys(args.experiments)) or list(SECTIONS)
    bad = [n for n in names if n not in SECTIONS]
    if bad:
        import difflib

        hints = [f"'{b}'" + (f" (did you mean '{c[0]}'?)" if (c := difflib.get_close_matches(b, list(SECTIONS), 1))
                             else "") for b in bad]
        raise UsageError(f"unknown experiment {', '.join(hints)}; choose from {', '.join(SECTIONS)}")
    if args.ugc_splits is not None and not 1 <= args.ugc_splits <= 100:
        raise UsageError("--ugc-splits must be between 1 and 100 (the VIDEVAL protocol has 100 splits)")
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    for opt in ("streaming_splits", "streaming_neural_splits"):
        v = getattr(args, opt)
        if v is not None and not 1 <= v <= 1000:
            raise UsageError(f"--{opt.replace('_', '-')} must be between 1 and 1000 (LIVE-NFLX has 1000 splits)")
    from deepqoe.experiments.reproduce import run_reproduce

    md, js = run_reproduce(names, args.out, quick=args.quick, ugc_splits=args.ugc_splits, jobs=args.jobs,
                           log=lambda *a, **_: status(args, " ".join(map(str, a))),
                           streaming_splits=args.streaming_splits,
                           streaming_neural_splits=args.streaming_neural_splits)
    status(args, f"wrote {md} and {js}")
    return ExitCode.OK
