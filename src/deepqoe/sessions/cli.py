"""``deepqoe sessions``: convert streaming sessions and compute their feature table (usage: ``DESCRIPTION``,
which ``deepqoe sessions --help`` shows)."""

from __future__ import annotations

from pathlib import Path

from deepqoe.cli import UsageError, finish_batch, print_json, status

MAX_SERIES_LENGTH = 86_400  # a day of seconds: longer series are not what --length is for

DESCRIPTION = """\
Streaming sessions: convert them to session JSON, check them, compute one feature row per session, or
compare two sets of them (two players, ABR algorithms, ladders or networks).

  deepqoe sessions convert INPUT --out sessions.json      # P.1203 JSON / session JSON / CSV / TSV / folder
  deepqoe sessions convert INPUT --out sessions.csv       # one row per segment (batch scoring's input)
  deepqoe sessions features INPUT --out features.csv [--series series.npz --length 64]
  deepqoe sessions validate INPUT [--json] [--mos-scale SCALE]
  deepqoe sessions compare A B [--model streaming] [--labels old new] [--json]   # is B better than A?

INPUT: a session JSON, a P.1203 input JSON, a table of sessions (one row per segment: .csv, .tsv separated by
tabs, or .parquet), or a folder of those (its subfolders are not read).

Bad sessions are skipped and listed on standard error at the end; the exit status is 3 (partial) when
some failed and 1 when none could be read.
"""


INPUT_HELP = "a session JSON, P.1203 input JSON, CSV / TSV / Parquet of sessions, or a folder"


def _load(path: str, mos_scale: str | None = None, for_prediction: bool = False):
    from deepqoe.sessions.readers import load_sessions

    return load_sessions(path, mos_scale=mos_scale, for_prediction=for_prediction)


def _suffix(path: str, allowed: tuple[str, ...], option: str) -> None:
    """A usage error when ``path`` (an output) does not end in one of ``allowed``."""
    if Path(path).suffix.lower() not in allowed:
        raise UsageError(f"{option} must end in {' or '.join(allowed)}, not {path!r}")


def _cmd_convert(args) -> int:
    from deepqoe.sessions.readers import save_sessions

    _suffix(args.out, (".json", ".csv", ".parquet", ".pq"), "--out")  # session JSON, or one row per segment
    sessions, failures = _load(args.input)
    n = 0
    if sessions:
        left_out = save_sessions(sessions, args.out)  # sessions the CSV layout cannot hold exactly
        failures, n = list(failures) + left_out, len(sessions) - len(left_out)
        if n:
            status(args, f"wrote {n} session(s) to {args.out}")
    return finish_batch(failures, n, verb="converted", file=args.input)


def _cmd_features(args) -> int:
    import numpy as np

    from deepqoe.io import atomic_path, write_table
    from deepqoe.sessions.features import SERIES_CHANNELS, per_second_series, session_features

    _suffix(args.out, (".csv", ".parquet", ".pq"), "--out")
    if args.series:
        _suffix(args.series, (".npz",), "--series")
    if not 1 <= args.length <= MAX_SERIES_LENGTH:
        raise UsageError(f"--length must be 1 to {MAX_SERIES_LENGTH} seconds, got {args.length}")
    sessions, failures = _load(args.input)
    if sessions:
        df = session_features(sessions).reset_index()
        if any(s.mos is not None for s in sessions):
            df["mos"] = [s.mos for s in sessions]
            df["mos_scale"] = [s.mos_scale for s in sessions]
        X, lengths = per_second_series(sessions, args.length) if args.series else (None, None)  # before writing
        write_table(df, args.out)
        status(args, f"wrote features of {len(sessions)} session(s) ({df.shape[1]} columns) to {args.out}")
        if args.series:
            with atomic_path(Path(args.series)) as tmp:
                with open(tmp, "wb") as f:
                    np.savez_compressed(f, X=X, lengths=lengths, ids=np.array([s.id for s in sessions]),
                                        channels=np.array(SERIES_CHANNELS))
            status(args, f"wrote per-second series {X.shape} to {args.series}")
    return finish_batch(failures, len(sessions), file=args.input)


def mos_scale_option(value: str | None) -> str | None:
    """``--mos-scale SCALE`` (``sessions validate``, ``predict``): the scale's name, None when not given; a usage
    error naming the option when it is not a scale."""
    if value is None:
        return None
    from deepqoe.errors import DeepQoEError
    from deepqoe.sessions.scales import parse_scale

    try:
        return parse_scale(value).name
    except DeepQoEError as e:
        raise UsageError(f"--mos-scale: {e.message}") from None


def _cmd_validate(args) -> int:
    mos_scale = mos_scale_option(args.mos_scale)
    sessions, failures = _load(args.input, mos_scale)
    if args.json:  # the whole report on standard output; the exit status says the same
        print_json({"input": str(args.input), "valid": len(sessions), "invalid": len(failures),
                    "ids": [s.id for s in sessions], "problems": [str(e) for e in failures]})
    else:
        print(f"{len(sessions)} valid session(s), {len(failures)} problem(s)")
    return finish_batch(failures, len(sessions), file=args.input)


def _cmd_compare(args) -> int:
    import math
    import warnings

    from deepqoe.errors import DeepQoEError, DeepQoENote
    from deepqoe.persistence import load_model
    from deepqoe.predictor import Predictor
    from deepqoe.sessions.compare import comparison_table, compare_sessions
    from deepqoe.sessions.scales import parse_scale

    labels = tuple(args.labels) if args.labels else ("A", "B")
    if len(set(labels)) != 2:
        raise UsageError("--labels: give two different names")
    if not (math.isfinite(args.level) and 0.5 <= args.level < 1):
        raise UsageError(f"--level must be at least 0.5 and below 1 (0.95 for 95 %), not {args.level:g}")
    if not 100 <= args.bootstrap <= 100_000:
        raise UsageError(f"--bootstrap must be 100 to 100000 resamples, not {args.bootstrap}")
    if args.seed < 0:
        raise UsageError(f"--seed must be 0 or more, not {args.seed}")
    if args.scale is not None:
        try:
            parse_scale(args.scale)
        except DeepQoEError as e:
            raise UsageError(f"--scale: {e.message}") from None
    predictor = Predictor(load_model(args.model))
    if not predictor.is_session:
        raise UsageError(f"--model {args.model}: a table model; sessions compare needs a session model (e.g. "
                         "streaming)")
    if args.calibration is not None:
        predictor.check_calibration(args.calibration)
    read = {}
    for label, path in zip(labels, (args.a, args.b)):
        sessions, failures = _load(path, for_prediction=True)  # scored: the mos plays no part
        if len(sessions) < 2:  # the set's problems are listed before saying it is too small
            finish_batch(failures, len(sessions), verb=f"read in set {label}", file=path)  # lists them; raises at 0
            raise DeepQoEError(f"set {label} holds {len(sessions)} readable session(s) ({len(failures)} failed, "
                               "listed above); a comparison needs at least 2 in each set", file=str(path))
        read[label] = (sessions, failures)
    res = compare_sessions(predictor, read[labels[0]][0], read[labels[1]][0], labels=labels, paired=args.paired,
                           n_boot=args.bootstrap, level=args.level, seed=args.seed, scale=args.scale,
                           calibration=args.calibration)
    for n in res["notes"]:
        warnings.warn(n, DeepQoENote, stacklevel=2)
    failures = {label: list(read[label][1]) + list(res["failures"][label]) for label in labels}
    if args.json:
        print_json({**res, "failures": {k: [str(e) for e in v] for k, v in failures.items()},
                    "inputs": {labels[0]: str(args.a), labels[1]: str(args.b)}})
    else:
        print(comparison_table(res))
    return finish_batch(failures[labels[0]] + failures[labels[1]], sum(res["sets"].values()), verb="compared")


def register(subparsers) -> None:
    p = subparsers.add_parser("sessions", help="streaming sessions: convert, validate, compute features, compare "
                                               "two sets",
                              description=DESCRIPTION)
    sub = p.add_subparsers(dest="sessions_command", metavar="ACTION")
    c = sub.add_parser("convert", help="convert P.1203 JSON / session JSON / CSV / folder to session JSON")
    c.add_argument("input", help=INPUT_HELP)
    c.add_argument("--out", required=True, help="output: session JSON (.json), or the CSV-of-sessions layout "
                                               "(.csv / .parquet: one row per segment, what --scheduler reads)")
    c.set_defaults(func=_cmd_convert)
    f = sub.add_parser("features", help="one feature row per session (CSV or Parquet)")
    f.add_argument("input", help=INPUT_HELP)
    f.add_argument("--out", required=True, help="output table (.csv or .parquet)")
    f.add_argument("--series", help="also write the per-second series (.npz: X, lengths, ids)")
    f.add_argument("--length", type=int, default=64,
                   help=f"length of the per-second series (1 to {MAX_SERIES_LENGTH} s)")
    f.set_defaults(func=_cmd_features)
    v = sub.add_parser("validate", help="check sessions and list the problems")
    v.add_argument("input", help=INPUT_HELP)
    v.add_argument("--json", action="store_true",
                   help="the report (counts, valid ids, problems) as JSON on standard output")
    v.add_argument("--mos-scale", metavar="SCALE", default=None,
                   help="the scale of every mos, in place of each session's mos_scale, as a training entry's "
                        "scale: checks them ('1-5', '0-100', any 'lo-hi', 'z')")
    v.set_defaults(func=_cmd_validate)
    m = sub.add_parser("compare", help="compare two sets of sessions (players, ABR algorithms, ladders, networks): "
                                       "each set's predicted QoE and log statistics, B - A with a bootstrap interval")
    m.add_argument("a", help="set A: " + INPUT_HELP)
    m.add_argument("b", help="set B: " + INPUT_HELP)
    m.add_argument("--model", default="streaming", help="session model directory or shipped name (default: streaming)")
    m.add_argument("--labels", nargs=2, metavar=("A", "B"), help="names of the two sets in the output")
    m.add_argument("--paired", choices=("auto", "yes", "no"), default="auto",
                   help="paired when both sets hold the same session ids (the same traces through two players), "
                        "else independent (default: auto)")
    m.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="bootstrap resamples, 100-100000 (default: 2000)")
    m.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    m.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    m.add_argument("--scale", help="scores on this MOS scale (e.g. 0-100; default 1-5)")
    m.add_argument("--calibration", metavar="DATASET", help="score as that training dataset's viewers used the scale")
    m.add_argument("--json", action="store_true", help="the comparison as JSON on standard output")
    m.set_defaults(func=_cmd_compare)
