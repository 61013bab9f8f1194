"""Readers for upstream formats: the Waterloo SQoE folder layout in its variants, and CSV ids as text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import real_data

from deepqoe.datasets.waterloo_sqoe import load_waterloo_folder, load_waterloo_sqoe_iv
from deepqoe.errors import DeepQoEError
from deepqoe.sessions.readers import load_sessions


def _log(n: int = 5, seed: int = 0, **extra) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    reb = np.zeros(n)
    reb[0], reb[3] = 1.5, 2.0          # initial loading, then a stall before chunk 3
    d = {"representation_index": rng.integers(0, 6, n), "rebuffering_duration": reb,
         "video_bitrate": rng.uniform(300, 5000, n).round(1), "chunk_duration": np.full(n, 2.0),
         "width": np.full(n, 1280), "height": np.full(n, 720), "framerate": np.full(n, 30.0),
         "vmaf": rng.uniform(20, 95, n).round(1)}
    d.update(extra)
    return pd.DataFrame(d)


def _folder(root: Path, data: pd.DataFrame, logs: dict[str, pd.DataFrame]) -> Path:
    (root / "streaming_logs").mkdir(parents=True)
    data.to_csv(root / "data.csv", index=False)
    for name, log in logs.items():
        log.to_csv(root / "streaming_logs" / name, index=False)
    return root


def test_minimal_variant_uses_defaults(tmp_path):
    log = _log()[["rebuffering_duration", "chunk_duration", "video_bitrate"]]
    folder = _folder(tmp_path / "mini", pd.DataFrame({"streaming_log": ["a.csv", "b.csv"], "mos": [70.0, 40.0]}),
                     {"a.csv": log, "b.csv": log})
    ds = load_waterloo_folder(folder)
    assert ds.name == "mini" and ds.scale == "0-100" and np.allclose(ds.mos, [70, 40])
    s = ds.sessions[0]
    assert s.id == "a" and s.device == "unknown" and s.content is None and s.codec == [None] * 5
    assert s.mos == 70.0 and s.mos_scale == "0-100" and s.dataset == "mini"
    assert np.allclose(s.seg_start, [0, 2, 4, 6, 8]) and np.allclose(s.seg_duration, 2.0)
    assert np.allclose(s.stall_start, [0.0, 6.0]) and np.allclose(s.stall_duration, [1.5, 2.0])
    assert np.all(np.isnan(s.quality)) and np.allclose(s.bitrate_kbps, log["video_bitrate"])
    assert list(ds.meta.columns) == ["session_id", "streaming_log"]


def test_full_variant_reads_every_column(tmp_path):
    log = _log(seed=1)
    data = pd.DataFrame({"streaming_log": ["0001.csv"], "mos": [55.5], "abr": ["BOLA"], "content": ["007"],
                         "encoding_profile": ["HEVC"], "device": ["phone"], "trace": [3]})
    ds = load_waterloo_folder(_folder(tmp_path / "full", data, {"0001.csv": log}), name="mine", mos_scale="0-100")
    s = ds.sessions[0]
    assert s.id == "0001" and s.dataset == "mine" and s.content == "007"
    assert s.codec == ["hevc"] * 5 and s.device == "mobile" and s.context["display_height"] == 1080
    assert np.allclose(s.quality, log["vmaf"]) and np.allclose(s.height, 720) and np.allclose(s.fps, 30)
    assert [g.representation for g in s.segments] == [float(v) for v in log["representation_index"]]
    m = ds.meta.iloc[0]
    assert m["abr"] == "BOLA" and m["content"] == "007" and m["trace"] == 3
    assert m["rep_index_mean"] == pytest.approx(log["representation_index"].mean())


def test_a_per_chunk_mos_never_reaches_the_sessions(tmp_path):
    data = pd.DataFrame({"streaming_log": ["x.csv"], "mos": [60.0]})
    clean = load_waterloo_folder(_folder(tmp_path / "clean", data, {"x.csv": _log(seed=2)}))
    rated_log = _log(seed=2, mos=np.array([1.0, 99.0, 5.0, 80.0, 3.0]))
    rated = load_waterloo_folder(_folder(tmp_path / "rated", data, {"x.csv": rated_log}))
    a, b = clean.sessions[0].to_dict(), rated.sessions[0].to_dict()
    a.pop("dataset"), b.pop("dataset")
    assert a == b
    pd.testing.assert_frame_equal(clean.meta, rated.meta)
    assert rated.sessions[0].mos == 60.0


def test_logs_named_without_extension_and_without_mos(tmp_path):
    data = pd.DataFrame({"streaming_log": ["0007", "0010"]})
    folder = _folder(tmp_path / "nomos", data, {"0007.csv": _log(), "0010.csv": _log(seed=3)})
    ds = load_waterloo_folder(folder)
    assert [s.id for s in ds.sessions] == ["0007", "0010"]
    assert np.all(np.isnan(ds.mos)) and all(s.mos is None for s in ds.sessions)


def test_chunk_duration_missing_or_given(tmp_path):
    log = _log().drop(columns=["chunk_duration"])
    folder = _folder(tmp_path / "nodur", pd.DataFrame({"streaming_log": ["a.csv"], "mos": [50]}), {"a.csv": log})
    with pytest.raises(DeepQoEError, match="chunk_duration") as e:
        load_waterloo_folder(folder)
    assert e.value.file.endswith("a.csv")
    ds = load_waterloo_folder(folder, chunk_duration=4)
    assert np.allclose(ds.sessions[0].seg_start, [0, 4, 8, 12, 16])


def test_bad_folders_name_the_problem(tmp_path):
    folder = _folder(tmp_path / "gone", pd.DataFrame({"streaming_log": ["a.csv", "missing.csv"], "mos": [1, 2]}),
                     {"a.csv": _log()})
    with pytest.raises(DeepQoEError, match="no log 'missing.csv' in streaming_logs/") as e:
        load_waterloo_folder(folder)  # the user's folder lacks it: not a DEEPQOE_DATA hint
    assert e.value.file.endswith("data.csv") and (e.value.column, e.value.row) == ("streaming_log", 2)
    assert "DEEPQOE_DATA" not in str(e.value)
    bad = _folder(tmp_path / "bad", pd.DataFrame({"streaming_log": ["a.csv"], "mos": ["high"]}), {"a.csv": _log()})
    with pytest.raises(DeepQoEError) as e:
        load_waterloo_folder(bad)
    assert e.value.column == "mos" and e.value.row == 1
    nolog = _folder(tmp_path / "nocol", pd.DataFrame({"video": ["a.csv"], "mos": [3]}), {"a.csv": _log()})
    with pytest.raises(DeepQoEError, match="streaming_log"):
        load_waterloo_folder(nolog)
    nostall = _folder(tmp_path / "nostall", pd.DataFrame({"streaming_log": ["a.csv"], "mos": [3]}),
                      {"a.csv": _log().drop(columns=["rebuffering_duration"])})
    with pytest.raises(DeepQoEError, match="rebuffering_duration"):
        load_waterloo_folder(nostall)


def test_real_sqoe_iv_folder():
    folder = real_data("waterloo-sqoe-iv", "data.csv").parent
    ds = load_waterloo_folder(folder, name="waterloo-sqoe-iv")
    assert len(ds.sessions) == 1350 and ds.scale == "0-100"
    assert ds.mos.min() >= 0 and ds.mos.max() <= 100
    assert {c for s in ds.sessions for c in s.codec} == {"h264", "hevc"}
    assert {s.device for s in ds.sessions} == {"mobile", "tv"}
    assert all(g.representation is not None for g in ds.sessions[0].segments)
    assert sum(len(s.stall_start) for s in ds.sessions) > 0
    ref = load_waterloo_sqoe_iv()
    assert [s.to_dict() for s in ref.sessions[:50]] == [s.to_dict() for s in ds.sessions[:50]]


def test_csv_session_ids_stay_text(tmp_path):
    p = tmp_path / "sessions.csv"
    p.write_text("session_id,start,duration,bitrate_kbps,stall_before,content,mos\n"
                 "001,0,4,1000,0.5,0042,4.1\n001,4,4,2000,0,0042,4.1\n"
                 "010,0,4,800,0,7,3.0\n")
    sessions, failures = load_sessions(p)
    assert not failures
    assert [s.id for s in sessions] == ["001", "010"]
    assert sessions[0].content == "0042" and sessions[1].content == "7"
    assert sessions[0].mos == 4.1 and np.allclose(sessions[0].stall_duration, [0.5])


def _lab(root: Path, n: int = 6) -> Path:
    """A Waterloo-layout folder of ``n`` sessions (two contents), MOS 0-100 rising with the VMAF."""
    logs = {f"{i:03d}.csv": _log(seed=10 + i, vmaf=np.full(5, 20.0 + 12 * i)) for i in range(n)}
    data = pd.DataFrame({"streaming_log": list(logs), "mos": [25.0 + 10 * i for i in range(n)],
                         "content": ["alpha" if i % 2 else "beta" for i in range(n)],
                         "encoding_profile": ["H264"] * n, "device": ["hdtv"] * n})
    return _folder(root, data, logs)


def test_load_sessions_reads_the_waterloo_layout(tmp_path):
    folder = _lab(tmp_path / "lab")
    ref = load_waterloo_folder(folder)
    for path in (folder, folder / "data.csv"):  # the folder, or its data.csv
        sessions, failures = load_sessions(path)
        assert not failures
        assert [s.to_dict() for s in sessions] == [s.to_dict() for s in ref.sessions]
    assert sessions[0].id == "000" and sessions[0].mos_scale == "0-100" and sessions[0].codec[0] == "h264"
    # a bad log fails its own session only; the others are read
    log = pd.read_csv(folder / "streaming_logs" / "002.csv", dtype=str)
    log.loc[3, "chunk_duration"] = "x"
    log.to_csv(folder / "streaming_logs" / "002.csv", index=False)
    (folder / "streaming_logs" / "004.csv").unlink()
    sessions, failures = load_sessions(folder)
    assert [s.id for s in sessions] == ["000", "001", "003", "005"]
    assert len(failures) == 2 and failures[0].file.endswith("002.csv") and failures[0].column == "chunk_duration"
    assert failures[0].row == 4 and "no log '004.csv'" in failures[1].message
    assert failures[1].file.endswith("data.csv") and failures[1].column == "streaming_log" and failures[1].row == 5


def test_waterloo_layout_with_scores_off_the_0_100_scale_reads_them_as_z(tmp_path):
    folder = _lab(tmp_path / "z")
    data = pd.read_csv(folder / "data.csv")
    data["mos"] = np.linspace(-1.5, 1.5, len(data))
    data.to_csv(folder / "data.csv", index=False)
    sessions, failures = load_sessions(folder)
    assert not failures and {s.mos_scale for s in sessions} == {"z"}


def test_predict_and_train_on_a_waterloo_folder(tmp_path, capsys):
    import json

    import yaml

    from deepqoe.cli import main

    folder = _lab(tmp_path / "lab", n=8)
    out = tmp_path / "scores.csv"
    assert main(["predict", "streaming", str(folder), "--out", str(out)]) == 0
    got = pd.read_csv(out, dtype={"id": str})
    assert got["id"].tolist() == [f"{i:03d}" for i in range(8)]
    assert got["score"].is_monotonic_increasing  # the VMAF rises from session to session, nothing else differs much
    capsys.readouterr()
    cfg = tmp_path / "lab.yaml"
    cfg.write_text(yaml.safe_dump({"sessions": {"datasets": [{"path": "lab"}]}, "model": {"n_members": 1},
                                   "training": {"epochs": 5}, "evaluation": {"protocol": "none"}}))
    assert main(["train", str(cfg), "--out", str(tmp_path / "m")]) == 0
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["datasets"] == {"lab": 8}


def test_waterloo_layout_individual_scores_train_a_rating_head(tmp_path, capsys):
    """A user's own Waterloo-layout folder with ``individual_scores`` feeds a ``distribution:`` head of a
    sessions config (as the registered Waterloo SQoE-IV does); a malformed cell is one error naming the
    file, column and row."""
    import json

    import yaml

    from deepqoe.cli import main

    folder = _lab(tmp_path / "lab", n=8)
    data = pd.read_csv(folder / "data.csv")
    rng = np.random.default_rng(0)
    data["individual_scores"] = ["[" + " ".join(str(int(v)) for v in np.clip(rng.normal(m, 12, 20), 0, 100)) + "]"
                                 for m in data["mos"]]
    data.to_csv(folder / "data.csv", index=False)
    cfg = tmp_path / "lab.yaml"
    cfg.write_text(yaml.safe_dump({"sessions": {"datasets": [{"path": "lab"}]}, "model": {"n_members": 1},
                                   "distribution": {"datasets": ["lab"]},
                                   "training": {"epochs": 5}, "evaluation": {"protocol": "none"}}))
    assert main(["train", str(cfg), "--out", str(tmp_path / "m"), "-q"]) == 0
    heads = json.loads((tmp_path / "m" / "distribution.json").read_text())
    assert heads["default"] == "lab" and heads["heads"]["lab"]["scale"] == "0-100"
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m"), str(folder), "--json", "-q"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all(r["distribution"]["head"] == "lab" and r["distribution"]["sos"] > 0 for r in rows)
    data.loc[2, "individual_scores"] = "[95 83 x]"
    data.to_csv(folder / "data.csv", index=False)
    assert main(["train", str(cfg), "--out", str(tmp_path / "m2"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "data.csv" in err and "individual_scores" in err and "row 3" in err and len(err.strip().splitlines()) == 1
    # without a head that asks for them, the ratings column is not read
    cfg.write_text(yaml.safe_dump({"sessions": {"datasets": [{"path": "lab"}]}, "model": {"n_members": 1},
                                   "training": {"epochs": 5}, "evaluation": {"protocol": "none"}}))
    assert main(["train", str(cfg), "--out", str(tmp_path / "m3"), "-q"]) == 0


def test_waterloo_layout_bad_rows_fail_their_own_session_in_one_clean_line(tmp_path):
    """A text ``trace`` is kept as text; a negative ``rebuffering_duration``, a second row naming the same log
    and an ``n/a`` VMAF each fail their own session (file, column and row, no numpy repr); an empty ``mos``
    gives a session without a score, which ``load_sessions`` (predict) still reads."""
    folder = _lab(tmp_path / "lab", n=6)
    data = pd.read_csv(folder / "data.csv", dtype={"streaming_log": str})
    data["trace"] = ["1", "t2", "3", "4", "5", "6"]
    data.loc[2, "mos"] = np.nan
    data.loc[5, "streaming_log"] = "000"  # the log of row 1 again, without its extension
    data.to_csv(folder / "data.csv", index=False)
    for name, col, row, value in (("001.csv", "rebuffering_duration", 3, "-5.0"), ("004.csv", "vmaf", 2, "n/a")):
        log = pd.read_csv(folder / "streaming_logs" / name, dtype=str)
        log.loc[row - 1, col] = value
        log.to_csv(folder / "streaming_logs" / name, index=False)
    sessions, failures = load_sessions(folder)
    assert [s.id for s in sessions] == ["000", "002", "003"] and sessions[1].mos is None
    assert sessions[0].mos == 25.0
    msgs = [str(e) for e in failures]
    assert len(msgs) == 3 and not any("np." in m or "\n" in m for m in msgs)
    assert failures[0].file.endswith("001.csv") and (failures[0].column, failures[0].row) == ("rebuffering_duration", 3)
    assert "negative" in msgs[0]
    assert (failures[1].column, failures[1].row) == ("vmaf", 2) and "missing value" in msgs[1]
    assert failures[2].file.endswith("data.csv") and (failures[2].column, failures[2].row) == ("streaming_log", 6)
    assert "session '000'" in msgs[2] and "used twice" in msgs[2]
    # the dataset loader (scores required) names the empty mos; the first problem raises
    with pytest.raises(DeepQoEError) as ei:
        load_waterloo_folder(folder)
    assert (ei.value.column, ei.value.row) == ("mos", 3) and "np." not in str(ei.value)
    data.loc[2, "mos"] = 40.0
    data.loc[5, "streaming_log"] = "005.csv"
    data.to_csv(folder / "data.csv", index=False)
    for name in ("001.csv", "004.csv"):
        _log(seed=1).to_csv(folder / "streaming_logs" / name, index=False)
    ds = load_waterloo_folder(folder)
    assert ds.meta["trace"].tolist() == [1, "t2", 3, 4, 5, 6]


# ---- ITU-T P.1203's integration-module input (O21, O22, I23, IGen; the P.1203 open dataset's mode0_inputs) --------
def _pq_input(o22, stalls=((0, 1.5),), **extra):
    return {"O21": [4.5] * len(o22), "O22": list(o22), "I23": {"stalling": [list(s) for s in stalls]},
            "IGen": {"device": "pc", "displaySize": "1920x1080"}, **extra}


def test_a_p1203_pq_input_takes_o22_as_its_quality_track(tmp_path, recwarn):
    import json
    import warnings

    from deepqoe.errors import DeepQoENote
    from deepqoe.predictor import load_predictor

    f = tmp_path / "x-input.json"
    f.write_text(json.dumps(_pq_input([4.6] * 30 + [2.0] * 30)))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        (s,), bad = load_sessions(f)
    assert not bad and s.id == "x" and s.media_duration == 60 and list(s.stall_duration) == [1.5]
    np.testing.assert_allclose(s.quality[[0, 59]], [90.0, 25.0])  # 1-5 read as 0-100 linearly
    assert any(issubclass(w.category, DeepQoENote) and "O22" in str(w.message) for w in rec)
    p = load_predictor("streaming")
    worse = tmp_path / "y-input.json"
    worse.write_text(json.dumps(_pq_input([2.0] * 60)))
    (s2,), _ = load_sessions(worse)
    a, b = (r["score"] for r in p.predict_sessions([s, s2], curve=False)[0])
    assert a > b  # O22 drives the score
    # with segments (mode 0), O22 is the standard's output and is ignored, as before
    seg = {"I13": {"segments": [{"start": 0, "duration": 60, "bitrate": 3000, "resolution": "1920x1080",
                                 "fps": 30, "codec": "h264"}]}}
    for o22 in ([1.0] * 60, [5.0] * 60):
        g = tmp_path / f"z{o22[0]:g}-input.json"
        g.write_text(json.dumps(_pq_input(o22, **seg)))
        assert load_sessions(g)[0][0].quality is None or np.isnan(load_sessions(g)[0][0].quality).all()


@pytest.mark.parametrize("o22, field", [([4.0, "x"], "O22[1]"), ([4.0, 6.0], "O22[1]"), ([], "O22"),
                                        ("4.0", "O22")])
def test_a_bad_o22_is_one_error_naming_the_value(tmp_path, o22, field):
    import json

    f = tmp_path / "b-input.json"
    f.write_text(json.dumps(_pq_input([4.0]) | {"O22": o22}))
    sessions, bad = load_sessions(f)
    assert not sessions and len(bad) == 1 and bad[0].field == field, bad


def test_the_shared_p1203_mode0_inputs_are_read(tmp_path):
    folder = real_data("p1203-open", "O46.csv").parent / "mode0_inputs"
    files = sorted(folder.glob("*-input.json"))[:6]
    for f in files:
        (tmp_path / f.name).write_bytes(f.read_bytes())
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sessions, bad = load_sessions(tmp_path)
    assert not bad and len(sessions) == len(files) == 6
    assert all(s.media_duration >= 50 and np.isfinite(s.quality).all() for s in sessions)
