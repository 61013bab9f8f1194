"""``deepqoe predict MODEL_DIR SESSIONS``: QoE of streaming sessions with a session model.

    deepqoe predict streaming session.json                 # a table on standard output
    deepqoe predict streaming sessions/ --out scores.json  # one object per session, with the curve
    deepqoe predict streaming sessions.csv --out scores.csv --scale 0-100

``SESSIONS`` is anything :func:`deepqoe.sessions.load_sessions` reads: a session JSON (one session, a
list, ``{"sessions": [...]}``), a P.1203 input JSON, a CSV of sessions (one row per segment) or a folder
of those. Scores come from :class:`deepqoe.predictor.Predictor` (the path the service and the demo use
too): on the model's scale (``session_model.scale``, the common 1-5 scale), clipped to it, and converted
to ``--scale`` (default ``1-5``; any ``lo-hi`` such as ``0-100``, or ``z``: ``(common - 3) / 0.8``, see
:mod:`deepqoe.sessions.scales`).

Output (by the suffix of ``--out``):

* ``.json``: ``[{"id", "score", "scale", "curve", "curve_step_s"}, ...]``; ``curve`` is the per-second QoE
  (the score of the first t seconds of wall-clock playback, stalls included, for t = 1, 2, ...; a
  session longer than the model's sequence length is averaged into that many equal bins, each
  ``curve_step_s`` seconds long); ``null`` when the model has no sequence input;
* ``.csv`` / ``.parquet``: ``id, score`` (and ``scale``; ``interval_low, interval_high, interval_level`` when
  the model has prediction intervals, see ``--interval``);
* no ``--out``: a table on standard output (``--json``: the rows of ``.json`` on standard output).

A bad session does not stop the batch: the others are predicted and the failures (session and field)
are listed on standard error at the end. The exit status (:class:`deepqoe.cli.ExitCode`) is 3 (partial)
when some sessions failed and 1 when none could be predicted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd

from deepqoe.errors import DeepQoEError


def session_table(rows: list[dict]) -> pd.DataFrame:
    """Session predictions as a table: ``id, score, scale`` (+ ``calibration`` when asked for; + ``interval_low,
    interval_high, interval_level``; + ``sos, p_gob, p_pow, q10, q50, q90, rating_head`` with a
    rating-distribution head; + ``explanation_method, explanation_output, contrib_<part>`` with ``--explain``); the CSV / Parquet output here and each partition of a batch
    (:mod:`deepqoe.batch_scoring`)."""
    from deepqoe.predictor import distribution_columns, explanation_columns, interval_columns

    table = pd.DataFrame({"id": [r["id"] for r in rows], "score": [r["score"] for r in rows],
                          "scale": [r["scale"] for r in rows]})
    if rows and "calibration" in rows[0]:  # --calibration DATASET
        table["calibration"] = [r["calibration"] for r in rows]
    interval_columns(table, rows)  # interval_low, interval_high, interval_level
    distribution_columns(table, rows)  # sos, p_gob, p_pow, q10-q90, rating_head: a model with a head
    explanation_columns(table, rows)  # --explain: explanation_method, _output, contrib_<part>
    return table


def write_predictions(rows: list[dict], out: str | None, stream=None, *, as_json: bool = False,
                      say=None) -> None:
    """JSON (every field), CSV / Parquet (id, score, scale) by the suffix of ``out``; when ``out`` is None, a
    table (JSON with ``as_json``) on standard output (``stream``). The line saying where a file was
    written goes to ``say`` (default: standard error)."""
    if out:
        p = Path(out)
        suffix = p.suffix.lower()
        if suffix == ".json":
            from deepqoe.io import atomic_write_json

            atomic_write_json(p, rows)
        elif suffix in (".csv", ".parquet", ".pq"):
            from deepqoe.io import write_table

            write_table(session_table(rows), p)
        else:
            raise DeepQoEError("the output must end in .json (scores and per-second curves), .csv or .parquet",
                               file=str(p))
        message = f"{len(rows)} session(s) written to {p}"
        if say is None:
            print(message, file=sys.stderr)
        else:
            say(message)
        return
    stream = stream or sys.stdout
    if as_json:
        from deepqoe.io import to_json

        print(to_json(rows), file=stream)
        return
    from deepqoe.errors import one_line

    shown = [one_line(r["id"])[:40] for r in rows]  # one line per session, whatever the id holds
    w = max([len("id")] + [len(x) for x in shown])
    iv = bool(rows) and "interval" in rows[0]
    dist = bool(rows) and "distribution" in rows[0]  # the viewers' side: spread, share good or better / poor or worse
    head = f"{'interval ' + format(rows[0]['interval']['level'], 'g'):<19}  " if iv else ""
    head += f"{'SOS':>7}  {'%GoB':>5}  {'%PoW':>5}  " if dist else ""
    parts = list(rows[0]["explanation"]["contributions"]) if rows and "explanation" in rows[0] else []
    head += "".join(f"{'contrib_' + p:>16}  " for p in parts)  # --explain: what each part moved the score by
    print(f"{'id':<{w}}  {'score':>8}  scale  {head}curve (min / last)", file=stream)
    for r, sid in zip(rows, shown):
        cv = r.get("curve") or []
        tail = "".join(f"{r['explanation']['contributions'].get(p, float('nan')):>+16.3f}  " for p in parts)
        tail += f"{min(cv):.2f} / {cv[-1]:.2f} ({len(cv)} step{'' if len(cv) == 1 else 's'})" if cv else "-"
        band = f"{r['interval']['low']:>8.3f} - {r['interval']['high']:<8.3f}  " if iv else ""
        if dist:
            d = r["distribution"]
            band += f"{d['sos']:>7.3f}  {100 * d['p_gob']:>5.1f}  {100 * d['p_pow']:>5.1f}  "
        print(f"{sid:<{w}}  {r['score']:>8.3f}  {r['scale']:<5}  {band}{tail}", file=stream)
    if dist:
        legend = (f"rating distribution: the '{rows[0]['distribution']['head']}' head; SOS on the scale shown; %GoB / "
                  "%PoW: the share of viewers rating good or better / poor or worse; --json for the quantiles")
        if say is None:
            print(legend, file=sys.stderr)
        else:
            say(legend)


#: the most per-second charts ``deepqoe predict --plots`` draws (one PNG each; about 0.1 s per chart)
MAX_PLOTS = 200
#: the fewest sessions with a ``mos`` that ``deepqoe predict`` scores its predictions against
MIN_AGAINST_MOS = 3
#: the fewest for the PLCC after the 4-parameter logistic fit (``plcc_logistic``; None below)
MIN_LOGISTIC = 5


def against_mos(rows: list[dict], sessions: list, scale) -> dict | None:
    """The predictions ``rows`` scored against the sessions' own ``mos`` (each converted from its ``mos_scale`` to
    the predictions' ``scale``): ``n`` (sessions with a mos), ``n_predicted``, ``scale``, ``mos_scales``, MSE, RMSE
    (on ``scale``), PLCC, ``plcc_logistic`` (after the 4-parameter logistic fit), SROCC and KROCC (None where
    undefined: every mos or every score the same), and ``pairs`` ``(id, mos, score)``; None when fewer than
    :data:`MIN_AGAINST_MOS` predicted sessions carry a mos. A ``z`` mos goes through the z-scored sessions' own
    mean and SD (as training reads a z-scored dataset); the logistic PLCC needs :data:`MIN_LOGISTIC` sessions;
    ``undefined`` says why the correlations are undefined, where they are. Prediction never reads the mos; this
    only compares."""
    import numpy as np

    from deepqoe.evaluation.metrics import constant, regression_metrics
    from deepqoe.sessions.scales import convert, fit_z_reference

    by_id = {s.id: s for s in sessions}
    rated = [(r, by_id[r["id"]]) for r in rows if r["id"] in by_id and by_id[r["id"]].mos is not None]
    if len(rated) < MIN_AGAINST_MOS:
        return None
    # z-scored mos go through their own mean and SD, as in training (deepqoe.datasets.scored.session_set)
    z = [s.mos for _, s in rated if (s.mos_scale or "1-5") == "z"]
    z_ref = fit_z_reference(z) if len(z) >= 2 and np.std(z) > 0 else "z"
    scales = [s.mos_scale or "1-5" for _, s in rated]
    mos = np.array([float(convert(np.array([s.mos]), z_ref if src == "z" else src, scale)[0])
                    for (_, s), src in zip(rated, scales)])
    score = np.array([float(r["score"]) for r, _ in rated])
    m = regression_metrics(mos, score, logistic=len(rated) >= MIN_LOGISTIC, undefined=None)
    m.setdefault("plcc_logistic", None)
    undefined = ("every mos is the same" if constant(mos) else "every score is the same" if constant(score) else None)
    return {"n": len(rated), "n_predicted": len(rows), "scale": scale.name, "mos_scales": sorted(set(scales)), **m,
            "undefined": undefined if m["plcc"] is None else None,
            "pairs": [(r["id"], round(float(v), 6), p) for (r, _), v, p in zip(rated, mos, score)]}


def _num(v: float | None) -> str:
    """A metric for people: three decimals, or "undefined" (None)."""
    return "undefined" if v is None else f"{v:.3f}"


def against_mos_line(m: dict) -> str:
    """The one-line summary of :func:`against_mos` for standard error."""
    def num(key):
        return _num(m[key])
    mixed = f"; mos on {len(m['mos_scales'])} scales: {', '.join(m['mos_scales'])}" if len(m["mos_scales"]) > 1 else ""
    fitted = f" ({num('plcc_logistic')} after a logistic fit)" if m.get("plcc_logistic") is not None else ""
    why = f" (correlations undefined: {m['undefined']})" if m.get("undefined") else ""
    return (f"against the sessions' own mos ({m['n']} of {m['n_predicted']} sessions, on the scale {m['scale']}"
            f"{mixed}): PLCC {num('plcc')}{fitted}, SROCC {num('srocc')}, KROCC {num('krocc')}, RMSE {m['rmse']:.3f}"
            f"{why}")


def curve_plots(rows: list[dict], sessions: list, folder: str | Path, limit: int = MAX_PLOTS) -> list[Path]:
    """One chart per predicted session (the first ``limit``), ``FOLDER/curve-<id>.png``: its per-second QoE
    curve on the scale of ``rows``, its stalls shaded, the score and interval in the title. File names keep
    letters, digits, ``.``, ``_`` and ``-`` of the id (others become ``_``; a name taken twice gets ``-2``...)."""
    import re

    from deepqoe.errors import one_line
    from deepqoe.io import atomic_write_text
    from deepqoe.report import curves_plot

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_id = {s.id: s for s in sessions}
    used: set[str] = set()
    written, index = [], []
    for r in rows[:limit]:
        s = by_id.get(r["id"])
        if s is None or not r.get("curve"):
            continue
        base = re.sub(r"[^\w.-]", "_", str(r["id"]))[:80].lstrip(".") or "session"
        name, k = base, 1
        while name.lower() in used:  # case-insensitive file systems too
            k += 1
            name = f"{base}-{k}"
        used.add(name.lower())
        iv = r.get("interval")
        band = f" [{iv['low']:.2f}, {iv['high']:.2f}] at {iv['level']:g}" if iv else ""
        how = f", calibration {r['calibration']}" if r.get("calibration") else ""
        label = one_line(r["id"])[:60]
        written.append(curves_plot(folder / f"curve-{name}.png", [r["curve"]], [s], [label],
                                   [r.get("curve_step_s") or 1.0], r["scale"],
                                   f"session {label}: score {r['score']:.2f}{band} ({r['scale']}{how})",
                                   [(iv["low"], iv["high"], iv["level"]) if iv else None]))
        index.append((str(r["id"]), written[-1].name, r["score"]))
    if index:  # which chart is which session (names are made safe, so two ids can share a base)
        import pandas as pd

        atomic_write_text(folder / "index.csv", pd.DataFrame(index, columns=["id", "file", "score"]).to_csv(index=False))
    return written


def predict_sessions(model: Any, args) -> int:
    """The ``deepqoe predict`` route for session input (``args``: ``data``, ``out``, ``scale``, optional
    ``calibration``, ``interval``, ``json`` and ``quiet``); ``model`` is a loaded model or a :class:`~deepqoe.predictor.Predictor`.
    Returns the exit status: 0, or 3 when some sessions failed (a DeepQoEError when none was predicted)."""
    from deepqoe.cli import UsageError, finish_batch, status
    from deepqoe.predictor import Predictor
    from deepqoe.sessions.readers import load_sessions
    from deepqoe.sessions.scales import requested_scale

    try:  # the service's "scale" (deepqoe.serve) is read by the same function
        scale = requested_scale(getattr(args, "scale", None))
    except DeepQoEError as e:  # a bad option value: exit 2
        raise UsageError(f"--scale: {e.message}") from None
    predictor = model if isinstance(model, Predictor) else Predictor(model)
    predictor.require_sessions()
    from deepqoe.cli_models import interval_level

    level = interval_level(args, predictor)  # --interval (default 0.9 when the model has intervals.json)
    plots = getattr(args, "plots", None)
    if plots is not None and not str(plots).strip():
        raise UsageError("--plots: give a folder name")
    if plots:
        from deepqoe.cli_models import check_output_path

        check_output_path(plots, "--plots", folder=True)  # before any work
    metrics_file = getattr(args, "metrics", None)
    if metrics_file is not None:
        _check_metrics_path(metrics_file, args)
    from deepqoe.sessions.cli import mos_scale_option

    mos_scale = mos_scale_option(getattr(args, "mos_scale", None))  # only for comparing with the mos
    sessions, failures = load_sessions(args.data, mos_scale=mos_scale, for_prediction=True)  # the mos plays no part
    out = getattr(args, "out", None)
    # tables keep no curve; the charts need them
    curve = bool(plots) or not (out and Path(out).suffix.lower() in (".csv", ".parquet", ".pq"))
    rows, bad = (predictor.predict_sessions(sessions, scale=scale, interval=level, curve=curve,
                                            calibration=getattr(args, "calibration", None),
                                            explain=bool(getattr(args, "explain", False))) if sessions
                 else ([], []))
    scored = against_mos(rows, sessions, scale) if rows else None
    if metrics_file and rows and scored is None:  # said before anything is written
        n_mos = sum(1 for s in sessions if s.mos is not None)
        lost = list(failures) + list(bad)
        why = (f" ({len(lost)} session(s) or file(s) could not be read or predicted; the first: {lost[0]})"
               if lost else "")
        raise DeepQoEError(f"--metrics: {n_mos} of the {len(sessions)} session(s) read carry a usable mos; "
                           f"{MIN_AGAINST_MOS} or more are needed to score the predictions against{why}",
                           file=args.data)
    if rows:
        if plots:
            written = curve_plots(rows, sessions, plots)
            more = f" (the first {len(written)} of {len(rows)})" if len(written) < len(rows) else ""
            status(args, f"{len(written)} per-second QoE chart(s) written to {plots}{more}")
            if scored is not None:
                mos_scatter(scored, Path(plots) / "predicted-vs-mos.png")
                status(args, f"predicted against the sessions' mos: {Path(plots) / 'predicted-vs-mos.png'}")
        write_predictions(rows, getattr(args, "out", None), as_json=bool(getattr(args, "json", False)),
                          say=lambda m: status(args, m))
        if scored is not None:
            status(args, against_mos_line(scored))
            if metrics_file:
                from deepqoe.io import atomic_write_json

                calibration = getattr(args, "calibration", None)
                atomic_write_json(metrics_file, {"model": str(getattr(args, "model_dir", "")), "data": str(args.data),
                                                 "calibration": calibration,
                                                 **{k: v for k, v in scored.items() if k != "pairs"},
                                                 "sessions": [{"id": i, "mos": m, "score": p}
                                                              for i, m, p in scored["pairs"]]})
                status(args, f"metrics written to {metrics_file}")
    return finish_batch(list(failures) + list(bad), len(rows), verb="predicted", file=args.data)


def _check_metrics_path(metrics_file: str, args) -> None:
    """``--metrics FILE.json``, before any work: a usage error for an empty name, another suffix, the ``--out``
    file, the input file or a file directly inside the input folder (the next run would read it as sessions);
    a DeepQoEError where it cannot be written."""
    from deepqoe.cli import UsageError
    from deepqoe.cli_models import check_output_path

    if not str(metrics_file).strip():
        raise UsageError("--metrics: give a file name ending in .json")
    if Path(metrics_file).suffix.lower() != ".json":
        raise UsageError(f"--metrics must end in .json, not {metrics_file!r}")
    target, data = Path(metrics_file).resolve(), Path(args.data).resolve()
    out = getattr(args, "out", None)
    if out and Path(out).resolve() == target:
        raise UsageError("--metrics and --out name the same file: give each its own")
    if target == data or (data.is_dir() and target.parent == data):
        where = ("is the input file" if target == data
                 else "is inside the input folder, whose next read would take it as sessions")
        raise UsageError(f"--metrics: {metrics_file} {where}; write it elsewhere")
    check_output_path(metrics_file, "--metrics")


def mos_scatter(scored: dict, path: Path) -> Path:
    """Predicted score against each session's mos (:func:`against_mos`), the identity line, the metrics in the title."""
    from deepqoe.report import scatter_plot

    scatter_plot(path, [p[1] for p in scored["pairs"]], [p[2] for p in scored["pairs"]],
                 f"{scored['n']} sessions: SROCC {_num(scored['srocc'])}, PLCC {_num(scored['plcc'])}, "
                 f"RMSE {scored['rmse']:.3f}",
                 xlabel=f"the sessions' mos ({scored['scale']})", ylabel=f"predicted ({scored['scale']})")
    return path
