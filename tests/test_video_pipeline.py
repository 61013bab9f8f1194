"""``deepqoe extract`` as a whole: inputs, output tables, cache and resume, bad files, exit codes, Dask."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("av")

from deepqoe.cli import main  # noqa: E402
from deepqoe.errors import DeepQoEError  # noqa: E402
from deepqoe.features.video.pipeline import (collect_inputs, extract_features,  # noqa: E402
                                             read_feature_metadata, write_outputs)
from deepqoe.features.video.siti import SITIExtractor  # noqa: E402
from deepqoe.features.video.stream import StreamExtractor  # noqa: E402
from deepqoe.features.video.synth import write_clip  # noqa: E402


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    for i, crf in enumerate((20, 30, 40)):
        write_clip(d / f"clip{i}.mp4", seconds=1, width=160, height=120, fps=25, crf=crf, seed=i)
    (d / "sub").mkdir()
    write_clip(d / "sub" / "clip3.webm", seconds=1, width=160, height=120, fps=25, codec="vp9", crf=40, seed=3)
    (d / "notes.txt.bak").write_text("not a video extension: ignored in folders")
    return d


@pytest.fixture
def mixed(good, tmp_path):
    """Good clips plus a zero-byte, a text, a truncated and a header-corrupted file."""
    d = tmp_path / "mixed"
    d.mkdir()
    for p in sorted(good.glob("clip*.mp4")):
        (d / p.name).write_bytes(p.read_bytes())
    data = (good / "clip0.mp4").read_bytes()
    (d / "zero.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("hello, I am not a video\n" * 20)
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (d / "corrupt.mkv").write_bytes(b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 40)
    return d


class Counter:
    """Counts calls of the extract method of some extractor classes."""

    def __init__(self, monkeypatch, *classes):
        self.calls = 0
        for cls in classes:
            orig = cls.extract

            def wrapped(this, *a, _orig=orig, **k):
                self.calls += 1
                return _orig(this, *a, **k)

            monkeypatch.setattr(cls, "extract", wrapped)


def _extract(args):
    return main(["extract", *map(str, args), "--no-progress"])


def test_folder_to_table_with_metadata_and_errors_file(good, tmp_path):
    out = tmp_path / "f.parquet"
    rc = _extract([good, "--out", out, "--extractors", "siti,stream", "--cache", tmp_path / "cache",
                   "--per-frame"])
    assert rc == 0
    df = pd.read_parquet(out)
    assert list(df["id"]) == ["clip0", "clip1", "clip2", "clip3"]
    assert df.columns[0] == "id" and "siti_si_max" in df and "stream_codec_vp9" in df
    assert df.set_index("id").loc["clip3", "stream_codec_vp9"] == 1.0
    assert all(df[c].dtype == np.float64 for c in df.columns[1:])
    meta = read_feature_metadata(out)
    assert meta["extractors"]["siti"]["version"] == SITIExtractor.version
    assert meta["extractors"]["siti"]["options"] == {"fps": 2.0}
    assert "siti_ti_mean" in meta["extractors"]["siti"]["columns"]
    assert json.loads((tmp_path / "f.meta.json").read_text())["extractors"].keys() == {"siti", "stream"}
    errors = pd.read_csv(tmp_path / "f.errors.csv")
    assert len(errors) == 0 and list(errors.columns) == ["id", "path", "extractor", "error"]
    frames = pd.read_parquet(tmp_path / "f.frames.parquet")
    assert set(frames["metric"]) == {"si", "ti"}


def test_cache_skips_done_files_and_resumes_after_an_interruption(good, tmp_path, monkeypatch):
    counter = Counter(monkeypatch, SITIExtractor, StreamExtractor)
    cache = tmp_path / "cache"
    items = collect_inputs([str(good)])
    # an interruption (Ctrl-C) during the third video
    orig = SITIExtractor.extract
    calls = {"n": 0}

    def interrupted(self, path, reference=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return orig(self, path, reference)

    monkeypatch.setattr(SITIExtractor, "extract", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract_features(items, ["stream", "siti"], cache_dir=cache, progress=False)
    monkeypatch.setattr(SITIExtractor, "extract", orig)
    done_before = counter.calls  # stream ran on 3 videos, siti on 2 (the 3rd was interrupted)
    run = extract_features(items, ["stream", "siti"], cache_dir=cache, progress=False)
    assert run.cached == 5 and run.computed == 3  # nothing done before is done again
    assert not run.failed_ids
    counter.calls = 0
    again = extract_features(items, ["stream", "siti"], cache_dir=cache, progress=False)
    assert counter.calls == 0, "a second run must not call any extractor"
    assert again.computed == 0 and again.cached == 8
    pd.testing.assert_frame_equal(again.features_table(), run.features_table())
    assert done_before >= 3
    # other options are other cache entries; --no-cache computes everything
    other = extract_features(items, ["siti"], options={"fps": 5}, cache_dir=cache, progress=False)
    assert other.computed == 4
    counter.calls = 0
    extract_features(items, ["siti"], cache_dir=None, progress=False)
    assert counter.calls == 4


def test_a_renamed_copy_is_found_in_the_cache(good, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    extract_features(collect_inputs([str(good / "clip0.mp4")]), ["siti"], cache_dir=cache, progress=False)
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes((good / "clip0.mp4").read_bytes())
    counter = Counter(monkeypatch, SITIExtractor)
    run = extract_features(collect_inputs([str(copy)]), ["siti"], cache_dir=cache, progress=False)
    assert counter.calls == 0 and run.ok_ids == ["renamed"]


def test_bad_files_are_reported_and_the_rest_succeed(mixed, tmp_path, capsys):
    out = tmp_path / "f.parquet"
    rc = _extract([mixed, "--out", out, "--extractors", "stream,siti", "--no-cache"])
    assert rc == 3  # some failed: partial success
    df = pd.read_parquet(out)
    assert sorted(df["id"]) == ["clip0", "clip1", "clip2"]
    errors = pd.read_csv(tmp_path / "f.errors.csv")
    assert set(errors["id"]) == {"zero", "text", "truncated", "corrupt"}
    msg = dict(zip(errors["id"], errors["error"]))
    assert "empty" in msg["zero"] and "not a readable video" in msg["text"]
    assert set(errors["extractor"]) == {"stream,siti"}
    err = capsys.readouterr().err
    assert "3 of 7 video(s) done" in err and "4 video(s) failed" in err and "Traceback" not in err


def test_exit_codes(mixed, good, tmp_path, capsys):
    bad_only = [mixed / "zero.mp4", mixed / "text.mp4", tmp_path / "missing.mp4"]
    assert _extract([*bad_only, "--out", tmp_path / "a.parquet", "--extractors", "stream", "--no-cache"]) == 1
    # every video failed: nothing is written, the failures are on stderr
    assert not list(tmp_path.glob("a.*"))
    err = capsys.readouterr().err
    assert "missing: stream: file not found" in err and "nothing was written" in err
    assert _extract([mixed, "--out", tmp_path / "b.parquet", "--extractors", "stream", "--no-cache",
                     "--strict"]) == 1
    assert _extract([good, "--out", tmp_path / "c.parquet", "--extractors", "stream", "--no-cache",
                     "--strict"]) == 0
    capsys.readouterr()
    # usage problems: one clear line, status 2
    assert _extract([good, "--out", tmp_path / "d.parquet", "--extractors", "sitti"]) == 2
    assert _extract([good, "--out", tmp_path / "d.parquet", "--extractors", "c3d", "--no-cache"]) == 2
    assert _extract([tmp_path / "empty_dir_does_not_exist" / "..", "--out", tmp_path / "e.txt"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("deepqoe: error: ") for e in err)
    assert "did you mean 'siti'" in err[0] and "C3D weights" in err[1]


def test_lists_ids_and_references(good, tmp_path):
    lst = tmp_path / "videos.csv"
    pd.DataFrame({"path": [str(good / "clip0.mp4"), "../" + good.name + "/clip1.mp4"],
                  "id": ["A", "B"], "reference": [str(good / "clip2.mp4"), str(good / "clip2.mp4")]}
                 ).to_csv(lst, index=False)
    (tmp_path / "x").mkdir()
    items = collect_inputs([str(lst)])
    assert [(i.id, i.reference is not None) for i in items] == [("A", True), ("B", True)]
    txt = tmp_path / "videos.txt"
    txt.write_text(f"# my videos\n{good / 'clip0.mp4'}\n\n{good / 'clip1.mp4'}\n")
    assert [i.id for i in collect_inputs([str(txt)])] == ["clip0", "clip1"]
    with pytest.raises(DeepQoEError, match="two videos have the id 'clip0'"):
        other = tmp_path / "o"
        other.mkdir()
        (other / "clip0.mp4").write_bytes(b"x")
        collect_inputs([str(good), str(other)])
    refs = collect_inputs([str(good / "clip0.mp4")], reference_dir=str(good / "sub"))
    assert refs[0].reference is None
    m = tmp_path / "map.csv"
    pd.DataFrame({"id": ["clip0"], "reference": [str(good / "clip2.mp4")]}).to_csv(m, index=False)
    assert collect_inputs([str(good / "clip0.mp4")], reference_map=str(m))[0].reference == str(good / "clip2.mp4")


def test_full_reference_through_the_cli(good, tmp_path):
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "clip0.mp4").write_bytes((good / "clip0.mp4").read_bytes())  # clip0 is its own reference
    out = tmp_path / "fr.parquet"
    rc = _extract([good / "clip0.mp4", good / "clip1.mp4", "--out", out, "--extractors", "full-reference",
                   "--reference-dir", refs, "--cache", tmp_path / "cache"])
    assert rc == 3  # clip1 has no reference: an error row, the batch goes on (partial success)
    df = pd.read_parquet(out).set_index("id")
    assert df.loc["clip0", "fr_psnr_y_mean"] >= 59 and df.loc["clip0", "fr_vmaf_mean"] > 90
    errors = pd.read_csv(tmp_path / "fr.errors.csv")
    assert list(errors["id"]) == ["clip1"] and "no reference" in errors["error"][0]


def test_dask_local_cluster_gives_the_same_features_as_in_process(good, tmp_path):
    pytest.importorskip("distributed")
    items = collect_inputs([str(good)])
    names = ["stream", "siti", "cnn-frames"]
    local = extract_features(items, names, options={"fps": 1}, cache_dir=None, progress=False)
    dask = extract_features(items, names, options={"fps": 1}, cache_dir=tmp_path / "cache",
                            scheduler="local", workers=2, processes=False, progress=False)
    assert not dask.failed_ids and dask.computed == 12
    a, b = local.features_table(), dask.features_table()
    assert list(a["id"]) == list(b["id"]) and list(a.columns) == list(b.columns)
    np.testing.assert_allclose(a.drop(columns="id").to_numpy(), b.drop(columns="id").to_numpy(),
                               rtol=1e-5, atol=1e-6)
    # the workers filled the cache
    again = extract_features(items, names, options={"fps": 1}, cache_dir=tmp_path / "cache", progress=False)
    assert again.computed == 0
    written = write_outputs(dask, tmp_path / "d.parquet")
    assert read_feature_metadata(written["features"])["scheduler"] == "local"


def test_unreachable_scheduler_is_a_clear_error(good, tmp_path):
    pytest.importorskip("distributed")
    with pytest.raises(DeepQoEError, match="scheduler"):
        extract_features(collect_inputs([str(good / "clip0.mp4")]), ["stream"], cache_dir=None,
                         scheduler="bogus", progress=False)


def test_c3d_through_the_cli_with_converted_weights(good, tmp_path, capsys):
    import torch

    from deepqoe.features.video.c3d import build_c3d

    torch.manual_seed(1)
    torch.save(build_c3d().state_dict(), tmp_path / "c3d.pickle")
    st = tmp_path / "c3d.safetensors"
    assert main(["convert-c3d-weights", str(tmp_path / "c3d.pickle"), str(st)]) == 0
    short = tmp_path / "short.mp4"
    write_clip(short, seconds=0.4, width=160, height=120, fps=25, crf=30)  # 10 frames
    out = tmp_path / "c3d.parquet"
    rc = _extract([good / "clip0.mp4", short, "--out", out, "--extractors", "c3d", "--c3d-weights", st,
                   "--c3d-max-clips", "1", "--no-cache"])
    assert rc == 3  # the short clip failed: partial success
    df = pd.read_parquet(out)
    assert list(df["id"]) == ["clip0"] and df.shape[1] == 1 + 4096
    errors = pd.read_csv(tmp_path / "c3d.errors.csv")
    assert list(errors["id"]) == ["short"] and "fewer than one C3D clip" in errors["error"][0]


def test_progress_bar_shows_videos_and_frames_per_second(good, capsys):
    extract_features(collect_inputs([str(good)]), ["siti"], cache_dir=None, progress=True)
    err = capsys.readouterr().err
    assert "4/4" in err and "frames/s" in err
