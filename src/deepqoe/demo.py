"""``deepqoe demo``: a new user's first five minutes, with no dataset and no network.

1. Viewer rows (genre, resolution, bitrate, viewer age and sex) rated by the shipped ``upec-qoe-lab``
   classifier, with each input's contribution to the expected rating.
2. Streaming sessions (smooth HD, slow start, stalls, low quality, quality switches) scored by the shipped
   ``streaming`` model, with per-second QoE curves and how much stalls, quality, switches, startup and
   context moved each score.
3. Two short clips encoded here with PyAV at a high and a low quality (when the video extractor is
   available), measured (resolution, bitrate, SI/TI) and scored as one-segment sessions.
4. With the datasets folder (``DEEPQOE_DATA``, or what ``deepqoe datasets fetch`` downloaded): a quick train-and-evaluate run of DeepQoE and baselines on the real
   UPEC QoE dataset (2 folds holding out whole videos, few epochs).

Everything lands in ``OUT/report.html`` (self-contained: plots embedded) with the PNGs and a
``results.json`` beside it; a summary table is printed.
"""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepqoe.errors import DeepQoEError
from deepqoe.report import _new_figure, _save, curves_plot

VIEWER_ROWS = pd.DataFrame([
    {"id": "sports-1080p", "content": "Sports", "resolution": 1080, "bitrate_video": 3300.0, "age_user": 24,
     "sex_user": "men"},
    {"id": "movie-720p", "content": "Movies", "resolution": 720, "bitrate_video": 1800.0, "age_user": 31,
     "sex_user": "women"},
    {"id": "news-480p", "content": "News", "resolution": 480, "bitrate_video": 900.0, "age_user": 27,
     "sex_user": "men"},
    {"id": "cartoon-360p", "content": "Cartoons", "resolution": 360, "bitrate_video": 450.0, "age_user": 22,
     "sex_user": "women"},
    {"id": "music-240p", "content": "Music", "resolution": 240, "bitrate_video": 200.0, "age_user": 29,
     "sex_user": "men"},
    {"id": "lesson-144p", "content": "Lessons", "resolution": 144, "bitrate_video": 80.0, "age_user": 36,
     "sex_user": "women"},
])


def _say(quiet: bool, *a) -> None:
    if not quiet:
        print(*a, flush=True)


def _table(df: pd.DataFrame, digits: int = 3) -> str:
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return f"{v:.{digits}f}" if np.isfinite(v) else "-"
        return str(v)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in r) + "</tr>"
                   for r in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text_table(df: pd.DataFrame, digits: int = 2) -> str:
    cells = [[str(c) for c in df.columns]] + [
        [f"{v:.{digits}f}" if isinstance(v, (float, np.floating)) else str(v) for v in r]
        for r in df.itertuples(index=False)]
    w = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c.ljust(k) for c, k in zip(r, w)) for r in cells)


# ------------------------------------------------------------------------------------------ plots
#: the demo's own charts (contributions, scores) are drawn at this dpi (the session curves: the report's)
DEMO_DPI = 100


def contributions_plot(path: Path, contrib: pd.DataFrame, labels: list[str], title: str, xlabel: str) -> Path:
    """Horizontal stacked bars: one bar per row, one colour per input group (left = pulls the score down)."""
    groups = [c for c in contrib.columns if c not in ("baseline", "prediction")]
    fig = _new_figure(7.5, 0.55 * len(labels) + 1.6, dpi=DEMO_DPI)
    ax = fig.add_subplot(111)
    y = np.arange(len(labels))
    colours = ["#d62728", "#ff7f0e", "#1f77b4", "#9467bd", "#2ca02c", "#8c564b", "#e377c2", "#7f7f7f"]
    pos_left = np.zeros(len(labels))
    neg_left = np.zeros(len(labels))
    for k, g in enumerate(groups):
        v = contrib[g].to_numpy(float)
        left = np.where(v >= 0, pos_left, neg_left + v)
        ax.barh(y, np.abs(v), left=left, color=colours[k % len(colours)], label=g, height=0.6)
        pos_left += np.where(v >= 0, v, 0)
        neg_left += np.where(v < 0, v, 0)
    ax.axvline(0, color="black", lw=0.8)
    for i, (b, p) in enumerate(zip(contrib["baseline"], contrib["prediction"])):
        ax.text(max(pos_left[i], 0) + 0.02, i, f"{p:.2f}", va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=min(len(groups), 5), loc="lower center", bbox_to_anchor=(0.5, 1.08))
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def scores_plot(path: Path, results: dict) -> Path:
    methods = list(results["methods"])
    key = results["key_metric"]
    m = [results["methods"][k]["metrics"][key]["mean"] for k in methods]
    s = [results["methods"][k]["metrics"][key]["std"] for k in methods]
    fig = _new_figure(5.5, 3.2, dpi=DEMO_DPI)
    ax = fig.add_subplot(111)
    ax.bar(methods, m, yerr=s, capsize=3, color=["#1f77b4"] + ["#aaaaaa"] * (len(methods) - 1))
    ax.set_ylabel(key)
    ax.set_title(f"{results['dataset']}: {results['n_splits']} folds, test videos never trained on", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ parts
def viewer_part(out: Path, quiet: bool) -> dict | None:
    from deepqoe.explain import explain
    from deepqoe.persistence import PRETRAINED_DIR, load_model

    if not (PRETRAINED_DIR / "upec-qoe-lab" / "model.json").is_file():
        return None
    est = load_model("upec-qoe-lab")
    X = VIEWER_ROWS.drop(columns=["id"])
    proba = est.predict_proba(X)
    classes = est.classes_.tolist()
    expected = proba @ np.asarray(classes, float)
    table = VIEWER_ROWS.copy()
    table["predicted rating"] = est.classes_[proba.argmax(1)]
    table["expected rating"] = expected
    for j, c in enumerate(classes):
        table[f"P({c})"] = proba[:, j]
    contrib = explain(est, X)
    contrib.index = VIEWER_ROWS["id"]
    png = contributions_plot(out / "viewer_contributions.png", contrib, VIEWER_ROWS["id"].tolist(),
                             "upec-qoe-lab: contribution of each input to the expected rating "
                             f"(baseline {contrib['baseline'].iloc[0]:.2f})", "change of the expected rating")
    _say(quiet, "\nViewer ratings (shipped model upec-qoe-lab):")
    _say(quiet, _text_table(table[["id", "content", "resolution", "bitrate_video", "predicted rating",
                                   "expected rating"]]))
    _say(quiet, "(bitrate_video in kbps; predicted rating: the most probable rating 1-5; expected rating: the "
                "mean of the ratings weighted by their probabilities)")
    return {"model": "upec-qoe-lab", "table": table, "contrib": contrib, "plots": [png]}


def _session_models():
    from deepqoe.persistence import PRETRAINED_DIR

    return (PRETRAINED_DIR / "streaming" / "model.json").is_file()


def _contributions(rows: list[dict]) -> pd.DataFrame:
    """The predictor's explanations as a table: one column per part, ``baseline`` and ``prediction``."""
    recs = []
    for r in rows:
        e = r.get("explanation") or {}
        c = dict(e.get("contributions") or {})
        value = float(e.get("value", r["score"]))
        recs.append({**c, "baseline": float(e.get("baseline", value - sum(c.values()))), "prediction": value})
    return pd.DataFrame(recs, index=pd.Index([r["id"] for r in rows], name="session_id"))


def sessions_part(out: Path, quiet: bool, clip_sessions: list | None = None) -> dict | None:
    if not _session_models():
        return None
    from deepqoe.predictor import load_predictor
    from deepqoe.sessions import session_features
    from deepqoe.sessions.frame import example_sessions, parse_sessions

    predictor = load_predictor("streaming")
    sessions = parse_sessions(example_sessions(), source="demo")
    rows, failures = predictor.predict_sessions(sessions, curve=True, explain=True)
    if failures:
        raise failures[0]
    F = session_features(sessions, extra=False)
    contrib = _contributions(rows)
    labels = [s.id for s in sessions]
    curves = [r["curve"] or [] for r in rows]
    sps = [r["curve_step_s"] or 1.0 for r in rows]
    table = pd.DataFrame({"session": labels, "device": [s.device for s in sessions],
                          "duration (s)": [s.media_duration for s in sessions],
                          "startup (s)": F["startup_delay"].to_numpy(),
                          "stalls": F["n_stalls"].astype(int).to_numpy(),
                          "stall time (s)": F["stall_total"].to_numpy(),
                          "switches": F["n_switches"].astype(int).to_numpy(),
                          "predicted QoE (1-5)": [r["score"] for r in rows]})
    plots = [curves_plot(out / "session_curves.png", curves, sessions, labels, sps),
             contributions_plot(out / "session_contributions.png", contrib, labels,
                                "streaming: what moved each session's score "
                                f"(baseline = an average training session, {contrib['baseline'].iloc[0]:.2f})",
                                "change of the predicted QoE (1-5)")]
    _say(quiet, "\nStreaming sessions (shipped model streaming):")
    _say(quiet, _text_table(table))
    res = {"model": "streaming", "table": table, "contrib": contrib, "plots": plots,
           "curves": {lab: list(c) for lab, c in zip(labels, curves)}}
    if clip_sessions:
        clip_rows, _ = predictor.predict_sessions(clip_sessions, curve=False)
        res["clip_scores"] = {r["id"]: r["score"] for r in clip_rows}
    return res


def clips_part(out: Path, quiet: bool) -> tuple[dict | None, list]:
    """Encode two short clips with PyAV, measure them, and turn them into one-segment sessions."""
    try:
        from deepqoe.features.video.base import make_extractor
        from deepqoe.features.video.synth import write_clip
    except ModuleNotFoundError:
        return None, []
    try:
        import deepqoe.sessions as sess
    except ModuleNotFoundError:  # pragma: no cover
        sess = None
    rows, sessions = [], []
    clips = out / "clips"
    for name, crf in (("clip-high-quality", 20), ("clip-low-quality", 45)):
        try:
            p = write_clip(clips / f"{name}.mp4", seconds=3.0, width=640, height=360, fps=25, crf=crf, seed=1)
            st = make_extractor("stream").extract(p).values
            si = make_extractor("siti").extract(p).values
        except Exception as e:  # noqa: BLE001 - the clip part is optional; say why it is missing
            _say(quiet, f"(clips skipped: {e})")
            return None, []
        row = {"clip": name, "crf": crf, "width": int(st["stream_width"]), "height": int(st["stream_height"]),
               "fps": st["stream_fps"], "bitrate (kbps)": st["stream_bitrate_kbps"]}
        row.update({k: v for k, v in si.items() if k in ("si_mean", "ti_mean")})
        rows.append(row)
        if sess is not None:
            sessions.append(sess.Session.from_dict({
                "id": name, "device": "pc",
                "segments": [{"start": 0.0, "duration": float(st["stream_duration"]) or 3.0,
                              "bitrate_kbps": st["stream_bitrate_kbps"], "width": int(st["stream_width"]),
                              "height": int(st["stream_height"]), "fps": float(st["stream_fps"]), "codec": "h264"}],
                "stalls": []}))
    return {"table": pd.DataFrame(rows), "dir": clips.name}, sessions


def data_part(out: Path, quiet: bool) -> dict | None:
    """Train and evaluate on the real UPEC QoE data, quickly (needs the datasets folder: ``DEEPQOE_DATA``, or
    the per-user folder ``deepqoe datasets fetch`` fills, as every loader finds it)."""
    from deepqoe.datasets import data_dir

    try:
        root = data_dir(required=False)
    except DeepQoEError:
        root = None
    if root is None:
        return None
    if not (Path(root) / "upec-qoe-lab" / "QoEcontrolledLab.csv").is_file():
        _say(quiet, f"(the datasets folder {root} has no upec-qoe-lab/QoEcontrolledLab.csv: real-data part skipped)")
        return None
    from importlib import resources

    from deepqoe.workflow import evaluate_config
    from deepqoe.config import config_from_dict, load_config

    cfg_path = Path(__file__).resolve().parents[2] / "configs" / "upec-qoe-lab.yaml"
    if cfg_path.is_file():
        cfg = load_config(cfg_path)
    else:  # an installed package: the config the shipped model was trained with
        import json

        meta = json.loads((resources.files("deepqoe") / "pretrained" / "upec-qoe-lab" / "model.json").read_text())
        ds = dict(meta["dataset"])
        ds.pop("base_dir", None)
        p = meta["params"]
        cfg = config_from_dict({"dataset": ds, "model": {"hidden_layers": p["hidden_layers"], "dropout": p["dropout"]},
                                "training": {"max_epochs": p["max_epochs"], "patience": p["patience"]},
                                "evaluation": {"n_splits": 2, "baselines": ["majority", "random_forest"]}})
    _say(quiet, "\nTraining and evaluating DeepQoE on the real UPEC QoE dataset (quick: 2 folds of whole videos, "
                "40 epochs)...")
    t0 = time.perf_counter()
    # group-kfold: each fold's test videos were never trained on (the config's group, id_video)
    res = evaluate_config(cfg, protocol="group-kfold", n_splits=2, baselines=["majority", "random_forest"],
                          progress=False, max_epochs=40)
    seconds = time.perf_counter() - t0
    rows = [{"method": k, **{m: v["metrics"][m]["mean"] for m in ("accuracy", "macro_f1") if m in v["metrics"]}}
            for k, v in res["methods"].items()]
    table = pd.DataFrame(rows)
    _say(quiet, _text_table(table, 3))
    return {"table": table, "results": res, "seconds": seconds, "plots": [scores_plot(out / "upec_scores.png", res)]}


# ------------------------------------------------------------------------------------------ report
_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1050px;margin:2em auto;
padding:0 1em;color:#222}h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}th,td{border:1px solid #ddd;padding:3px 8px;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}img{max-width:100%;
margin:.5em 0}.note{color:#555;font-size:.9em}code{background:#f4f4f4;padding:1px 4px}"""


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(Path(path).stem)}" src="data:image/png;base64,{data}">'


def write_report(out: Path, parts: dict[str, Any]) -> Path:
    from deepqoe import __version__

    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>deepqoe demo</title><style>{_CSS}</style>"
         "</head><body>", "<h1>deepqoe demo</h1>",
         f"<p class='note'>deepqoe {__version__}, {time.strftime('%Y-%m-%d %H:%M')}. Built-in examples scored "
         "by the models shipped with the package; no dataset or network needed. Reproduce: "
         "<code>deepqoe demo --out DIR</code>.</p>"]
    v = parts.get("viewer")
    if v:
        h += ["<h2>1. Viewer ratings (model <code>upec-qoe-lab</code>)</h2>",
              "<p>The DeepQoE classifier of the ICME 2019 paper's small-dataset network, trained on 562 real "
              "ratings (UPEC QoE lab). It predicts the 1-5 rating a viewer gives a video from its genre "
              "(GloVe word vectors), resolution and bitrate and the viewer's age and sex.</p>",
              _table(v["table"]),
              "<p>Contributions (exact Shapley values over the inputs, relative to the training baseline: "
              "mean numbers, most frequent categories): how much each input moved the expected rating. "
              "They add up to <i>prediction - baseline</i>.</p>", _img(v["plots"][0]),
              _table(v["contrib"].reset_index().rename(columns={"id": "row"}))]
    else:
        h += ["<h2>1. Viewer ratings</h2><p>The shipped model <code>upec-qoe-lab</code> is not in this build.</p>"]
    s = parts.get("sessions")
    if s:
        h += ["<h2>2. Streaming sessions (model <code>streaming</code>)</h2>",
              "<p>A session-QoE regressor trained on the public streaming datasets together (P.1203 open "
              "dataset, Waterloo SQoE-IV, LIVE-NFLX) on a common 1-5 scale. It reads the session's segments "
              "(bitrate, resolution, frame rate), stalls and device, and a per-second series through a "
              "temporal encoder.</p>", _table(s["table"]), _img(s["plots"][0]),
              "<p>What moved each score, relative to an average training session: stalls (count, length, "
              "and the stall steps of the series), quality (quality level and its per-second series), "
              "switches, startup delay, and context (device, duration).</p>", _img(s["plots"][1]),
              _table(s["contrib"].reset_index().rename(columns={"session_id": "session"}))]
    else:
        h += ["<h2>2. Streaming sessions</h2><p>The shipped model <code>streaming</code> is not in this build "
              "(or the session support is missing).</p>"]
    c = parts.get("clips")
    if c:
        t = c["table"].copy()
        if s and s.get("clip_scores"):
            t["predicted QoE (1-5)"] = t["clip"].map(s["clip_scores"])
        h += ["<h2>3. Two clips encoded here</h2>",
              f"<p>Encoded with PyAV (H.264, 3 s, 640x360) at a high and a low quality into "
              f"<code>{html.escape(c['dir'])}</code>, measured by the video extractors (stream, SI/TI) and scored "
              "as one-segment sessions by the streaming model.</p>", _table(t)]
    d = parts.get("data")
    if d:
        h += ["<h2>4. Real data: DeepQoE on the UPEC QoE dataset</h2>",
              f"<p>Trained and tested on 2 folds of the real ratings, each testing on videos it never trained on "
              f"(group-kfold by <code>id_video</code>; 40 epochs, {d['seconds']:.0f} s): how the model does on new "
              "videos. The shipped model's card has the paper's protocol (10 random 90/10 splits of the ratings, "
              "where test videos were also rated in training).</p>",
              _table(d["table"]), _img(d["plots"][0])]
    else:
        h += ["<h2>4. Real data</h2><p class='note'>Set <code>DEEPQOE_DATA</code> to the datasets folder (or run "
              "<code>deepqoe datasets fetch --all</code>) to also train and evaluate DeepQoE on the real UPEC QoE dataset here.</p>"]
    h += ["<h2>Next steps</h2><ul>",
          "<li><code>deepqoe predict upec-qoe-lab rows.csv</code>: rate your own rows</li>",
          "<li><code>deepqoe serve</code>: the HTTP service (<code>POST /predict</code>, docs at /docs)</li>",
          "<li><code>deepqoe finetune upec-qoe-lab my-config.yaml --out my-model</code>: transfer to your data</li>",
          "<li><code>deepqoe export upec-qoe-lab --onnx model.onnx</code>: ONNX</li></ul></body></html>"]
    from deepqoe.io import atomic_write_text

    path = out / "report.html"
    atomic_write_text(path, "\n".join(h))
    return path


#: the file that marks a folder as a demo report (``--out`` replaces only such a folder, or an empty one)
DEMO_MARKER = ".deepqoe-demo"


def run_demo(out: str | Path = "deepqoe-demo", with_data: bool = True, quiet: bool = False) -> Path:
    """Write the demo report to the folder ``out``: built in a temporary sibling and moved into place
    whole, so it replaces only an earlier demo report (or an empty folder), never someone's files."""
    from deepqoe.io import atomic_directory, check_output_dir

    out = check_output_dir(out if str(out) else ".", DEMO_MARKER, "a deepqoe demo report folder")
    if out.resolve() == Path.cwd().resolve():
        raise DeepQoEError("is the current folder; give the report a folder of its own (e.g. --out deepqoe-demo)",
                           file=str(out))
    t0 = time.perf_counter()
    with atomic_directory(out, DEMO_MARKER, "a deepqoe demo report folder") as tmp:
        report = _write_demo(tmp, with_data, quiet)
        (tmp / DEMO_MARKER).write_text("a deepqoe demo report (deepqoe demo --out replaces this folder)\n")
    report = out / report.name
    _say(quiet, f"\nreport written to {report} ({time.perf_counter() - t0:.1f} s)")
    return report


def _write_demo(out: Path, with_data: bool, quiet: bool) -> Path:
    """Every part of the demo into the folder ``out``; the path of its report.html."""
    from deepqoe.io import atomic_write_json

    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    parts: dict[str, Any] = {"viewer": viewer_part(out, quiet)}
    clips, clip_sessions = clips_part(out, quiet)
    parts["clips"] = clips
    parts["sessions"] = sessions_part(out, quiet, clip_sessions)
    if not parts["viewer"] and not parts["sessions"]:
        raise DeepQoEError("no shipped model in this build (src/deepqoe/pretrained is empty); "
                           "rebuild them with scripts/build_pretrained.py")
    parts["data"] = data_part(out, quiet) if with_data else None
    report = write_report(out, parts)
    results = {k: {"table": v["table"].to_dict("records")} for k, v in parts.items() if v}
    if parts["sessions"]:
        results["sessions"]["curves"] = parts["sessions"]["curves"]
        results["sessions"]["contributions"] = parts["sessions"]["contrib"].reset_index().to_dict("records")
    if parts["viewer"]:
        results["viewer"]["contributions"] = parts["viewer"]["contrib"].reset_index().to_dict("records")
    if parts["data"]:
        results["data"]["evaluation"] = parts["data"]["results"]
    atomic_write_json(out / "results.json", results)
    return report
