"""``deepqoe predict --scheduler``: batch scoring on Dask (deepqoe.batch_scoring) gives predict's scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

from deepqoe import batch_scoring  # noqa: E402
from deepqoe.batch_scoring import score_batch  # noqa: E402
from deepqoe.cli import main  # noqa: E402
from deepqoe.errors import DeepQoEError  # noqa: E402

from conftest import real_data  # noqa: E402

# One float32 rounding step of the model's 6-decimal output: the session model's scores depend on which
# sessions share a batch at the last digit (predict itself shows it when given a subset of its sessions).
ROUNDING = 1.5e-6


def session_rows(n: int = 240, seed: int = 0, bad: str | None = "s0017") -> pd.DataFrame:
    """The CSV-of-sessions layout: 3-6 segments per session, random bitrates, heights and stalls; the
    session ``bad`` has a negative segment duration."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        sid = f"s{i:04d}"
        br, h = rng.uniform(300, 6000), rng.choice([360, 480, 720, 1080])
        for k in range(int(rng.integers(3, 7))):
            rows.append({"session_id": sid, "start": 4 * k, "duration": -4 if (sid == bad and k == 1) else 4,
                         "bitrate_kbps": round(br * rng.uniform(0.7, 1.3)), "height": h,
                         "stall_before": round(rng.uniform(0, 3), 2) if k == 0 or rng.random() < 0.1 else 0.0,
                         "device": "pc"})
    return pd.DataFrame(rows)


def write_parts(df: pd.DataFrame, folder, n_parts: int) -> None:
    """Parquet partitions cut by row count, each cut inside a session (sessions have 3+ rows): sessions
    straddle the partitions."""
    folder.mkdir()
    cuts = [0]
    for i in range(1, n_parts):
        c = i * len(df) // n_parts
        if "session_id" in df.columns and df["session_id"].iloc[c - 1] != df["session_id"].iloc[c]:
            c += 1
        cuts.append(c)
    cuts.append(len(df))
    for i in range(n_parts):
        df.iloc[cuts[i]:cuts[i + 1]].to_parquet(folder / f"part-{i:03d}.parquet", index=False)


@pytest.fixture(scope="module")
def sessions_case(tmp_path_factory):
    """Session rows as one CSV and as 4 Parquet partitions, and predict's single-process scores."""
    tmp = tmp_path_factory.mktemp("batch")
    df = session_rows()
    csv = tmp / "sessions.csv"
    df.to_csv(csv, index=False)
    parts = tmp / "parts"
    write_parts(df, parts, 4)
    single = tmp / "single.csv"
    assert main(["predict", "streaming", str(csv), "--out", str(single)]) == 3  # partial: the bad session
    return df, csv, parts, pd.read_csv(single, dtype={"id": str})


def _same_scores(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert got["id"].is_unique
    assert sorted(got["id"]) == sorted(want["id"])
    m = want.merge(got, on="id", suffixes=("_single", "_batch"))
    assert (m["scale_single"] == m["scale_batch"]).all()
    assert np.abs(m["score_single"] - m["score_batch"]).max() <= ROUNDING


def test_straddling_sessions_score_as_predict(sessions_case, tmp_path):
    df, _, parts, single = sessions_case
    ids = [pd.read_parquet(parts / f"part-{i:03d}.parquet")["session_id"] for i in range(4)]
    assert all(a.iloc[-1] == b.iloc[0] for a, b in zip(ids, ids[1:]))  # sessions spread over two partitions
    batch_scoring._load_predictor.cache_clear()
    res = score_batch("streaming", parts, tmp_path / "out", workers=2, processes=False)
    assert batch_scoring._load_predictor.cache_info().misses == 1  # one load per process, not per partition
    assert res.kind == "sessions" and res.n_scored == len(single) == df["session_id"].nunique() - 1
    assert [e.message for e in res.failures] == [m for m in (e.message for e in res.failures) if "s0017" in m]
    assert len(res.failures) == 1 and res.failures[0].field == "segments[1].duration"
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == [f"part-{i:05d}.parquet" for i in range(res.n_partitions)] and res.n_partitions >= 2
    got = pd.read_parquet(tmp_path / "out")
    assert list(got.columns)[:3] == ["id", "score", "scale"]
    assert set(got.columns[3:]) <= {"sos", "p_gob", "p_pow", "q10", "q50", "q90", "rating_head"}  # the shipped model's rating distribution
    _same_scores(got, single)
    assert not list(tmp_path.glob(".deepqoe-tmp*"))  # the temporary folder was renamed, nothing left


def test_csv_in_blocks_and_scale(sessions_case, tmp_path):
    _, csv, _, single = sessions_case
    res = score_batch("streaming", csv, tmp_path / "out", workers=1, processes=False, blocksize=3000,
                      scale="0-100")
    assert res.n_scored == len(single)
    got = pd.read_parquet(tmp_path / "out")
    assert set(got["scale"]) == {"0-100"}
    # 1-5 -> 0-100 is linear: (s - 1) * 25
    m = single.merge(got, on="id")
    assert np.abs((m["score_x"] - 1) * 25 - m["score_y"]).max() <= 25 * ROUNDING + 1e-6


def test_calibration_as_predict(sessions_case, tmp_path):
    """``--calibration`` reaches the workers: the batch scores are those of ``deepqoe predict --calibration``."""
    _, csv, _, single = sessions_case
    one = tmp_path / "one.csv"
    assert main(["predict", "streaming", str(csv), "--out", str(one), "--calibration", "waterloo-sqoe-iv", "-q"]) == 3
    want = pd.read_csv(one, dtype={"id": str})
    res = score_batch("streaming", csv, tmp_path / "out", workers=1, processes=False, calibration="waterloo-sqoe-iv")
    got = pd.read_parquet(tmp_path / "out")
    assert res.n_scored == len(want) and set(got["calibration"]) == {"waterloo-sqoe-iv"}
    _same_scores(got, want)
    assert np.abs(want.merge(single, on="id")[["score_x", "score_y"]].diff(axis=1)).max().max() > 0.05


def test_cli_partial_exit_and_failures_on_stderr(sessions_case, tmp_path, capsys, monkeypatch):
    _, _, parts, single = sessions_case
    monkeypatch.setattr(batch_scoring, "LOCAL_PROCESSES", False)  # threads: a quick cluster for the test
    out = tmp_path / "scores"
    code = main(["predict", "streaming", str(parts), "--out", str(out), "--scheduler", "local", "--workers", "2"])
    err = capsys.readouterr().err
    assert code == 3
    assert "1 session(s) or file(s) could not be predicted" in err and "s0017" in err
    assert f"{len(single)} sessions scored" in err
    _same_scores(pd.read_parquet(out), single)
    # the folder exists now: a second run refuses and leaves it as it is
    before = sorted(p.name for p in out.iterdir())
    code = main(["predict", "streaming", str(parts), "--out", str(out), "--scheduler", "local"])
    err = capsys.readouterr().err
    assert code == 1 and "already exists" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == before


def test_bad_scheduler_and_usage_errors(sessions_case, tmp_path, capsys):
    _, csv, _, _ = sessions_case
    out = tmp_path / "out"
    assert main(["predict", "streaming", str(csv), "--out", str(out), "--scheduler", "bogus"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown scheduler 'bogus'" in err and not out.exists()
    assert main(["predict", "streaming", str(csv), "--out", str(out), "--scheduler", "tcp://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err.strip()
    assert "cannot reach the Dask scheduler" in err and len(err.splitlines()) == 1 and not out.exists()
    assert main(["predict", "streaming", str(csv), "--json", "--scheduler", "local"]) == 2  # needs --out
    assert "--out" in capsys.readouterr().err
    assert main(["predict", "streaming", str(csv), "--workers", "2"]) == 2  # --workers without --scheduler
    assert main(["predict", "streaming", str(csv), "--out", str(out), "--scheduler", "tcp://h:1", "--workers",
                 "2"]) == 2
    assert main(["predict", "streaming", str(csv), "--out", str(tmp_path / "x.csv"), "--scheduler", "local"]) == 1
    assert "folder" in capsys.readouterr().err


def test_nothing_scored_leaves_no_folder(tmp_path):
    df = session_rows(n=3, bad=None)
    df["duration"] = -1.0
    parts = tmp_path / "parts"
    write_parts(df, parts, 2)
    with pytest.raises(DeepQoEError, match="no session could be predicted"):
        score_batch("streaming", parts, tmp_path / "out", workers=1, processes=False)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".deepqoe-tmp*"))


def test_table_model_rows_as_predict(tmp_path):
    src = real_data("upec-qoe-lab", "QoEcontrolledLab.csv")
    rows = pd.read_csv(src, sep=";", decimal=",").iloc[:300]
    csv = tmp_path / "rows.csv"
    rows.to_csv(csv, sep=";", decimal=",", index=False)
    single = tmp_path / "single.csv"
    assert main(["predict", "upec-qoe-lab", str(csv), "--out", str(single)]) == 0
    want = pd.read_csv(single, dtype={"viewer": str})  # (a viewer-aware model: ids as text, as in Parquet)
    parts = tmp_path / "parts"
    write_parts(rows, parts, 3)
    for data, kw in ((parts, {}), (csv, {"blocksize": 8000})):  # Parquet partitions; the CSV in blocks
        out = tmp_path / f"out-{data.stem}"
        res = score_batch("upec-qoe-lab", data, out, workers=2, processes=False, **kw)
        assert res.kind == "rows" and res.n_scored == len(rows) and res.n_partitions >= 2
        got = pd.read_parquet(out).sort_values("row").reset_index(drop=True)
        assert list(got.columns) == list(want.columns)
        assert got["row"].tolist() == list(range(1, len(rows) + 1))
        # ids as the input holds them: a CSV's as written (text, as deepqoe predict reads them), Parquet's typed
        expect = want.assign(id=want["id"].astype(str)) if data == csv else want
        pd.testing.assert_frame_equal(got, expect, check_dtype=False, atol=ROUNDING, rtol=0)
    # a bad value: one error naming the row of the whole input, and no output folder
    bad = rows.copy()
    bad.loc[250, "sex_user"] = None
    write_parts(bad, tmp_path / "bad", 3)
    with pytest.raises(DeepQoEError, match="row 251"):
        score_batch("upec-qoe-lab", tmp_path / "bad", tmp_path / "out-bad", workers=1, processes=False)
    assert not (tmp_path / "out-bad").exists()
