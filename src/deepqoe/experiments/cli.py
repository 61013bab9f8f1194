"""``deepqoe reproduce``: re-run the DeepQoE paper's experiments on public stand-in data."""

from __future__ import annotations

from pathlib import Path

from deepqoe.errors import DeepQoEError
from deepqoe.experiments import SECTIONS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce", help="reproduce the DeepQoE paper's experiments (tables + plots) on public data",
        description="Reproduce the DeepQoE paper (ICME 2019) on public stand-in datasets read from "
                    "DEEPQOE_DATA. Writes OUT/report.md (tables and PNG plots beside it) and "
                    "OUT/results.json (every number of the report).")
    p.add_argument("experiments", nargs="*", metavar="EXPERIMENT",
                   help=f"which experiments to run (default: all): {', '.join(SECTIONS)}")
    p.add_argument("--quick", action="store_true",
                   help="fewer splits and epochs (a smoke run of a few minutes, for CI)")
    p.add_argument("--out", required=True, type=Path, help="output folder for report.md, results.json, plots")
    p.add_argument("--ugc-splits", type=int, default=None,
                   help="number of VIDEVAL 80/20 splits for the ugc experiment (the published protocol "
                        "uses 100; default: 20 for a full run, 2 with --quick)")
    p.add_argument("--streaming-splits", type=int, default=None,
                   help="LIVE-NFLX splits for the cheap streaming methods (default 1000; 5 with --quick)")
    p.add_argument("--streaming-neural-splits", type=int, default=None,
                   help="how many of those (the first ones) the neural streaming models run on (default 100)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes for independent splits (default: 2)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    names = list(dict.fromkeys(args.experiments)) or list(SECTIONS)
    bad = [n for n in names if n not in SECTIONS]
    if bad:
        import difflib

        hints = [f"'{b}'" + (f" (did you mean '{c[0]}'?)" if (c := difflib.get_close_matches(b, list(SECTIONS), 1))
                             else "") for b in bad]
        raise DeepQoEError(f"unknown experiment {', '.join(hints)}; choose from {', '.join(SECTIONS)}")
    if args.ugc_splits is not None and not 1 <= args.ugc_splits <= 100:
        raise DeepQoEError("--ugc-splits must be between 1 and 100 (the VIDEVAL protocol has 100 splits)")
    if args.jobs < 1:
        raise DeepQoEError("--jobs must be at least 1")
    from deepqoe.experiments.reproduce import run_reproduce

    for opt in ("streaming_splits", "streaming_neural_splits"):
        v = getattr(args, opt)
        if v is not None and not 1 <= v <= 1000:
            raise DeepQoEError(f"--{opt.replace('_', '-')} must be between 1 and 1000 (LIVE-NFLX has 1000 splits)")
    md, js = run_reproduce(names, args.out, quick=args.quick, ugc_splits=args.ugc_splits, jobs=args.jobs,
                           log=print, streaming_splits=args.streaming_splits,
                           streaming_neural_splits=args.streaming_neural_splits)
    print(f"wrote {md} and {js}")
    return 0
