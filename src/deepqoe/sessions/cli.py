"""``deepqoe sessions``: convert streaming sessions and compute their feature table.

    deepqoe sessions convert INPUT --out sessions.json      # P.1203 JSON / session JSON / CSV / folder
    deepqoe sessions features INPUT --out features.csv [--series series.npz --length 64]
    deepqoe sessions validate INPUT

Bad sessions are skipped and listed at the end (exit status 1 when some failed, 2 when none could be
read).
"""

from __future__ import annotations

import sys
from pathlib import Path

from deepqoe.errors import DeepQoEError


def _load(path: str):
    from deepqoe.sessions.readers import load_sessions

    sessions, failures = load_sessions(path)
    return sessions, failures


def _report(failures, n_ok: int) -> int:
    if failures:
        print(f"{len(failures)} session(s) or file(s) could not be read:", file=sys.stderr)
        for e in failures:
            print(f"  - {e}", file=sys.stderr)
    if n_ok == 0:
        raise DeepQoEError("no valid session could be read" + (f" ({len(failures)} failure(s) above)"
                                                              if failures else ""))
    return 1 if failures else 0


def _cmd_convert(args) -> int:
    from deepqoe.sessions.readers import save_sessions

    sessions, failures = _load(args.input)
    if sessions:
        save_sessions(sessions, args.out)
        print(f"wrote {len(sessions)} session(s) to {args.out}")
    return _report(failures, len(sessions))


def _cmd_features(args) -> int:
    import numpy as np

    from deepqoe.io import atomic_path, write_table
    from deepqoe.sessions.features import SERIES_CHANNELS, per_second_series, session_features

    sessions, failures = _load(args.input)
    if sessions:
        df = session_features(sessions).reset_index()
        if any(s.mos is not None for s in sessions):
            df["mos"] = [s.mos for s in sessions]
            df["mos_scale"] = [s.mos_scale for s in sessions]
        write_table(df, args.out)
        print(f"wrote features of {len(sessions)} session(s) ({df.shape[1]} columns) to {args.out}")
        if args.series:
            X, lengths = per_second_series(sessions, args.length)
            with atomic_path(Path(args.series)) as tmp:
                with open(tmp, "wb") as f:
                    np.savez_compressed(f, X=X, lengths=lengths, ids=np.array([s.id for s in sessions]),
                                        channels=np.array(SERIES_CHANNELS))
            print(f"wrote per-second series {X.shape} to {args.series}")
    return _report(failures, len(sessions))


def _cmd_validate(args) -> int:
    sessions, failures = _load(args.input)
    print(f"{len(sessions)} valid session(s)")
    return _report(failures, len(sessions))


def register(subparsers) -> None:
    p = subparsers.add_parser("sessions", help="streaming sessions: convert, validate, compute features",
                              description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="sessions_command", metavar="ACTION")
    c = sub.add_parser("convert", help="convert P.1203 JSON / session JSON / CSV / folder to session JSON")
    c.add_argument("input", help="a session JSON, P.1203 input JSON, CSV of sessions, or a folder")
    c.add_argument("--out", required=True, help="output session JSON file")
    c.set_defaults(func=_cmd_convert)
    f = sub.add_parser("features", help="one feature row per session (CSV or Parquet)")
    f.add_argument("input", help="a session JSON, P.1203 input JSON, CSV of sessions, or a folder")
    f.add_argument("--out", required=True, help="output table (.csv or .parquet)")
    f.add_argument("--series", help="also write the per-second series (.npz: X, lengths, ids)")
    f.add_argument("--length", type=int, default=64, help="length of the per-second series (default 64)")
    f.set_defaults(func=_cmd_features)
    v = sub.add_parser("validate", help="check sessions and list the problems")
    v.add_argument("input")
    v.set_defaults(func=_cmd_validate)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
