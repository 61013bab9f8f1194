"""``deepqoe extract`` keeps a video on which one extractor failed, and writes whole numbers as integers.

1. A video on which some extractors failed (here ``full-reference``: its reference is missing) keeps its
   row in the feature table with the other extractors' columns; the failed extractor's columns are
   empty for that row. A video on which every extractor failed has no row; a run in which no extractor
   succeeded on any video writes nothing (exit 1), as before.
2. The CSV output writes columns of whole numbers (width, height, rotation, frame counts, one-hot
   codecs) as integers, ``640`` not ``640.0``, an empty cell for a missing value; other columns are
   written as before; Parquet keeps float64 for every feature column.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("av")

from deepqoe.cli import main  # noqa: E402
from deepqoe.features.video.pipeline import collect_inputs, extract_features, write_outputs  # noqa: E402
from deepqoe.features.video.synth import write_clip  # noqa: E402

EXTRACTORS = "stream,siti,full-reference"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Videos a, b, c (64x48, 10 frames) and an empty zero.mp4; reference folders with every reference
    (``refs_all``), without b's (``refs``) and without a's (``refs_no_a``)."""
    root = tmp_path_factory.mktemp("partial")
    for seed, name in enumerate("abc", start=1):
        write_clip(root / "vids" / f"{name}.mp4", seconds=0.4, width=64, height=48, fps=25, crf=35, seed=seed)
        ref = write_clip(root / "refs_all" / f"{name}.mp4", seconds=0.4, width=64, height=48, fps=25, crf=8,
                         seed=seed)
        for folder, missing in (("refs", "b"), ("refs_no_a", "a")):
            if name != missing:
                (root / folder).mkdir(exist_ok=True)
                (root / folder / f"{name}.mp4").write_bytes(ref.read_bytes())
    (root / "vids" / "zero.mp4").write_bytes(b"")
    return root


def _extract(*args) -> int:
    return main(["extract", *map(str, args), "--no-progress"])


def _lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip()]


def test_a_video_with_a_failed_extractor_keeps_the_columns_of_the_others(clips, tmp_path, capsys):
    out = tmp_path / "f.parquet"
    rc = _extract(clips / "vids", "--reference-dir", clips / "refs", "-e", EXTRACTORS, "--cache",
                  tmp_path / "cache", "--per-frame", "--out", out)
    err = capsys.readouterr().err
    assert rc == 3, err  # partial success, as documented
    df = pd.read_parquet(out)
    assert list(df["id"]) == ["a", "b", "c"]  # input order; zero (every extractor failed) has no row
    row = df.set_index("id")
    fr_cols = [c for c in df.columns if c.startswith("fr_")]
    assert fr_cols and "fr_vmaf_mean" in fr_cols and "fr_frames" in fr_cols
    assert row.loc["b", fr_cols].isna().all()  # the failed extractor: empty
    assert row.loc[["a", "c"], fr_cols].notna().all().all()
    assert row.loc["b", "stream_width"] == 64 and row.loc["b", "stream_height"] == 48  # its other columns
    assert row.loc["b", "siti_si_mean"] > 0 and row.loc["b", "stream_codec_h264"] == 1
    # Parquet: float64 for every feature column, the failed extractor's cells null
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(out)
    assert schema.field("id").type in (pa.string(), pa.large_string())
    assert all(schema.field(c).type == pa.float64() for c in df.columns[1:])
    assert pq.read_table(out).column("fr_vmaf_mean").null_count == 1
    # the errors table and stderr: one line per failed video and distinct error, as before
    errors = pd.read_csv(tmp_path / "f.errors.csv")
    assert list(errors["id"]) == ["b", "zero"]
    assert list(errors["extractor"]) == ["full-reference", "stream,siti,full-reference"]
    assert "no reference video named 'b'" in errors["error"][0]
    b_line = [ln for ln in _lines(err) if ln.startswith("  b:")]
    assert b_line == [f"  b: full-reference: {errors['error'][0]} ({clips / 'vids' / 'b.mp4'})"], err
    assert any(ln.startswith("  zero: stream,siti,full-reference: ") for ln in _lines(err)), err
    assert "2 of 4 video(s) done, 1 more in part" in err and "2 video(s) failed (1 of them in part" in err
    assert "Traceback" not in err
    # metadata: counts, and the failed extractor's columns are named
    meta = json.loads((tmp_path / "f.meta.json").read_text())
    assert (meta["videos"], meta["ok"], meta["failed"], meta["partial"], meta["rows"]) == (4, 2, 2, 1, 3)
    assert meta["extractors"]["full-reference"]["columns"] == fr_cols
    assert meta["extractors"]["stream"]["columns"][0] == "stream_width"
    # the per-frame table: the extractors that produced frames, of the videos in the table
    frames = pd.read_parquet(tmp_path / "f.frames.parquet")
    by = frames.groupby("id")["extractor"].unique().map(set).to_dict()
    assert by == {"a": {"siti", "full-reference"}, "b": {"siti"}, "c": {"siti", "full-reference"}}
    # --strict: 1 when any failed, the table written all the same
    rc = _extract(clips / "vids", "--reference-dir", clips / "refs", "-e", EXTRACTORS, "--cache",
                  tmp_path / "cache", "--strict", "--out", tmp_path / "s.parquet")
    capsys.readouterr()
    assert rc == 1 and list(pd.read_parquet(tmp_path / "s.parquet")["id"]) == ["a", "b", "c"]


def test_the_columns_are_the_same_whichever_video_failed(clips, tmp_path, capsys):
    tables = {}
    for refs in ("refs_all", "refs", "refs_no_a"):
        out = tmp_path / f"{refs}.parquet"
        rc = _extract(*(clips / "vids" / f"{n}.mp4" for n in "abc"), "--reference-dir", clips / refs,
                      "-e", EXTRACTORS, "--cache", tmp_path / "cache", "--out", out)
        assert rc == (0 if refs == "refs_all" else 3), capsys.readouterr().err
        tables[refs] = pd.read_parquet(out)
    columns = list(tables["refs_all"].columns)
    assert columns[:2] == ["id", "stream_width"] and columns[-1].startswith("fr_")
    for refs, df in tables.items():
        assert list(df.columns) == columns, refs
        assert list(df["id"]) == ["a", "b", "c"], refs
    # the values that were computed are the same in every run; the failed ones are missing
    full = tables["refs_all"].set_index("id")
    for refs, missing in (("refs", "b"), ("refs_no_a", "a")):
        part = tables[refs].set_index("id")
        fr_cols = [c for c in columns if c.startswith("fr_")]
        assert part.loc[missing, fr_cols].isna().all()
        pd.testing.assert_frame_equal(part.drop(index=missing), full.drop(index=missing))
        pd.testing.assert_series_equal(part.loc[missing].drop(fr_cols), full.loc[missing].drop(fr_cols))


def test_csv_writes_whole_numbers_as_integers_and_a_missing_value_empty(clips, tmp_path, capsys):
    out = tmp_path / "f.csv"
    rc = _extract(clips / "vids", "--reference-dir", clips / "refs", "-e", EXTRACTORS, "--cache",
                  tmp_path / "cache", "--out", out)
    assert rc == 3, capsys.readouterr().err
    with open(out, newline="") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["a", "b", "c"]
    for r in rows.values():
        assert (r["stream_width"], r["stream_height"], r["stream_pixels"]) == ("64", "48", "3072"), r
        assert r["stream_rotation"] == "0" and r["stream_codec_h264"] == "1" and r["stream_codec_vp9"] == "0"
    # a whole-number column with a missing value: integers, and an empty cell
    assert rows["a"]["fr_frames"] == rows["c"]["fr_frames"] == "10" and rows["b"]["fr_frames"] == ""
    assert all(rows["b"][c] == "" for c in rows["b"] if c.startswith("fr_"))
    # every value is the one of the Parquet table of the same run, to the last bit: a column of whole
    # numbers as integers, any other column as before (0.4, 35.38, 53.546475...)
    rc = _extract(clips / "vids", "--reference-dir", clips / "refs", "-e", EXTRACTORS, "--cache",
                  tmp_path / "cache", "--out", tmp_path / "f.parquet")
    assert rc == 3, capsys.readouterr().err
    pq_df = pd.read_parquet(tmp_path / "f.parquet").set_index("id")
    for vid, r in rows.items():
        for c, text in r.items():
            if c == "id":
                continue
            v = pq_df.loc[vid, c]
            if math.isnan(v):
                assert text == "", (vid, c, text)
            elif pq_df[c].dropna().map(float.is_integer).all():
                assert text == str(int(v)), (vid, c, text)
            else:
                assert text == repr(float(v)), (vid, c, text)  # e.g. 0.5, 12.345...: unchanged
    assert all("." in r["siti_si_mean"] and "." in r["stream_duration"] for r in rows.values())
    assert rows["a"]["stream_duration"] == "0.4"


def test_a_run_where_one_extractor_failed_on_every_video(clips, tmp_path, capsys):
    """Every video failed in part: the table is written (exit 3); the extractor that failed everywhere
    has no columns (nothing names them). No extractor succeeded at all: nothing is written (exit 1)."""
    out = tmp_path / "f.csv"
    rc = _extract(clips / "vids" / "b.mp4", "--reference-dir", clips / "refs", "-e", EXTRACTORS, "--no-cache",
                  "--out", out)
    err = capsys.readouterr().err
    assert rc == 3, err
    df = pd.read_csv(out)
    assert list(df["id"]) == ["b"] and int(df["stream_width"].iloc[0]) == 64
    assert str(df["stream_width"].dtype) == "int64"
    assert not [c for c in df.columns if c.startswith("fr_")]
    assert "0 of 1 video(s) done, 1 more in part" in err and "every video failed" not in err
    # every extractor failed on every video: nothing is written, an earlier table is left as it was
    before = out.read_bytes()
    rc = _extract(clips / "vids" / "zero.mp4", clips / "missing.mp4", "-e", EXTRACTORS, "--reference-dir",
                  clips / "refs", "--no-cache", "--out", out)
    err = capsys.readouterr().err
    assert rc == 1 and out.read_bytes() == before
    assert "every video failed (2 of 2)" in err and "nothing was written" in err
    # a damaged or missing video is said as such by full-reference too (before its missing reference)
    assert "  zero: stream,siti,full-reference: the file is empty" in err, err
    assert "  missing: stream,siti,full-reference: file not found" in err, err


def test_the_python_api_gives_the_same_rows(clips, tmp_path):
    """extract_features -> ExtractionRun: the table, its per-frame table and the written files come from
    one code path; an all-missing column of a partial run stays a float64 (double) column in Parquet."""
    still = write_clip(tmp_path / "still.mp4", seconds=0.04, width=64, height=48, fps=25, crf=35)  # 1 frame
    items = collect_inputs([str(clips / "vids" / "a.mp4"), str(clips / "vids" / "b.mp4"), str(still),
                            str(clips / "vids" / "zero.mp4")], reference_dir=str(clips / "refs"))
    run = extract_features(items, EXTRACTORS.split(","), cache_dir=None, progress=False)
    assert run.outcome == "partial"
    assert run.ok_ids == ["a"] and run.failed_ids == ["b", "still", "zero"]
    assert run.partial_ids == ["b", "still"] and run.table_ids == ["a", "b", "still"]
    df = run.features_table()
    assert list(df["id"]) == ["a", "b", "still"]
    assert all(df[c].dtype == np.float64 for c in df.columns[1:])
    t = df.set_index("id")
    assert t.loc["still", "stream_width"] == 64 and t.loc[["b", "still"], "fr_vmaf_mean"].isna().all()
    frames = run.per_frame_table()
    assert set(frames["id"]) == {"a", "b", "still"}
    assert set(frames.query("id != 'a'")["extractor"]) == {"siti"}
    # the written files are that table
    paths = write_outputs(run, tmp_path / "f.csv")
    back = pd.read_csv(paths["features"], dtype={"id": str})
    assert list(back.columns) == list(df.columns)
    np.testing.assert_array_equal(back.drop(columns="id").to_numpy(dtype=float),
                                  df.drop(columns="id").to_numpy(dtype=float))
    assert json.loads(paths["meta"].read_text())["rows"] == 3

    # the one-frame clip alone: full-reference fails (no reference), TI is missing (one frame): a partial
    # run whose siti_ti columns hold no value at all
    one = extract_features(items[2:3], EXTRACTORS.split(","), cache_dir=None, progress=False)
    assert one.outcome == "partial" and one.table_ids == ["still"]
    paths = write_outputs(one, tmp_path / "one.parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    got = pq.read_table(paths["features"])
    assert got.num_rows == 1 and got.column("siti_ti_max").null_count == 1
    assert all(got.schema.field(c).type == pa.float64() for c in got.column_names[1:])
    pd.testing.assert_frame_equal(pd.read_parquet(paths["features"]), one.features_table(), check_dtype=False)
    paths = write_outputs(one, tmp_path / "one.csv")
    with open(paths["features"], newline="") as f:
        (r,) = list(csv.DictReader(f))
    assert r["siti_ti_max"] == "" and r["stream_width"] == "64" and r["stream_duration"] == "0.04"
