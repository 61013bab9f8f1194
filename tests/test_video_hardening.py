"""``deepqoe extract`` on hostile inputs (issue 12, item 11 and units): files cut short, folder entries
that are not video files, a feature cache edited by hand, and the bitrate's unit."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

pytest.importorskip("av")

from deepqoe.cli import main  # noqa: E402
from deepqoe.features.video.decode import FrameSampler, VideoError, check_complete, probe  # noqa: E402
from deepqoe.features.video.pipeline import VideoItem, collect_inputs, extract_features  # noqa: E402
from deepqoe.features.video.stream import StreamExtractor  # noqa: E402
from deepqoe.features.video.synth import write_clip  # noqa: E402


def _extract(*args) -> int:
    return main(["extract", *map(str, args), "--no-progress"])


def _cut(src, dst, fraction: float = 0.5):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("hardening")
    whole = write_clip(d / "whole.mp4", seconds=4, width=160, height=120, fps=25, crf=30, faststart=True)
    mkv = write_clip(d / "whole.mkv", seconds=4, width=160, height=120, fps=25, crf=30)
    data = whole.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat"), "the test needs the index before the data"
    return {"whole": whole, "mkv": mkv,
            "cut": _cut(whole, d / "cut.mp4"),            # index at the start: still opens and decodes
            "cut_mkv": _cut(mkv, d / "cut_mkv.mkv"),          # no frame count: judged by the duration
            "tail": _cut(whole, d / "tail.mp4", 0.97),    # a few frames missing at most: still whole
            "dir": d}


# -- a file cut short --------------------------------------------------------------------------------
def test_a_cut_file_with_its_index_first_opens_but_is_not_whole(clips):
    info = probe(clips["cut"])
    assert info.frames == 100 and info.duration == pytest.approx(4.0, abs=0.05)  # the header is intact
    with pytest.raises(VideoError, match=r"truncated or damaged: the file holds \d+ of the 100 frames"):
        list(FrameSampler(clips["cut"], fps=2))
    with pytest.raises(VideoError, match="truncated"):
        list(FrameSampler(clips["cut"], fps=None, fmt="gray"))
    with pytest.raises(VideoError, match="truncated"):
        check_complete(clips["cut"])
    with pytest.raises(VideoError, match=r"holds [12]\.\d s of the 4\.0 s"):
        check_complete(clips["cut_mkv"])
    # whole files, and one missing only its last few frames, pass
    for name in ("whole", "mkv", "tail"):
        check_complete(clips[name])
        assert len(list(FrameSampler(clips[name], fps=2))) >= 7


def test_a_cut_file_is_a_failed_video_with_a_one_line_reason(clips, tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    for name in ("whole", "cut", "cut_mkv"):
        os.symlink(clips[name], d / clips[name].name)
    out = tmp_path / "f.parquet"
    _extract(d, "--out", out, "--extractors", "stream,siti", "--no-cache")
    assert list(pd.read_parquet(out)["id"]) == ["whole"]
    errors = pd.read_csv(tmp_path / "f.errors.csv")
    assert sorted(errors["id"]) == ["cut", "cut_mkv"]
    assert set(errors["extractor"]) == {"stream,siti"}  # one reason, whether decoded or only demuxed
    for msg in errors["error"]:
        assert msg.startswith("truncated or damaged") and "\n" not in msg
    assert "truncated or damaged" in capsys.readouterr().err


def test_full_reference_refuses_a_cut_video_or_reference(clips):
    from deepqoe.features.video.full_reference import FullReferenceExtractor

    ex = FullReferenceExtractor()
    with pytest.raises(VideoError, match="truncated"):
        ex.extract(clips["cut"], reference=clips["whole"])
    with pytest.raises(VideoError, match="reference video .*cut.mp4: truncated"):
        ex.extract(clips["whole"], reference=clips["cut"])


# -- folder entries that are not video files -----------------------------------------------------------
@pytest.mark.parametrize("cache", [False, True])
def test_a_folder_named_like_a_video_and_a_broken_link_are_reported(clips, tmp_path, capsys, cache):
    d = tmp_path / "in"
    d.mkdir()
    os.symlink(clips["whole"], d / "good.mp4")
    (d / "x.mp4").mkdir()
    os.symlink(tmp_path / "deleted.mp4", d / "gone.mp4")
    items = collect_inputs([str(d)])
    assert [it.id for it in items] == ["gone", "good", "x"]
    out = tmp_path / "f.parquet"
    cache_args = ["--cache", tmp_path / "cache"] if cache else ["--no-cache"]
    _extract(d, "--out", out, "--extractors", "stream", *cache_args)
    assert list(pd.read_parquet(out)["id"]) == ["good"]
    errors = pd.read_csv(tmp_path / "f.errors.csv").set_index("id")["error"]
    assert errors["x"] == "is a folder, not a video file"
    assert errors["gone"].startswith("broken symbolic link") and "deleted.mp4" in errors["gone"]
    err = capsys.readouterr().err
    assert "x: stream: is a folder" in err and "gone: stream: broken symbolic link" in err


def test_run_outcome_tells_ok_partial_and_failed(clips, tmp_path):
    (tmp_path / "x.mp4").mkdir()
    good, bad = VideoItem("whole", str(clips["whole"])), VideoItem("x", str(tmp_path / "x.mp4"))
    outcomes = {}
    for name, items in {"ok": [good], "partial": [good, bad], "failed": [bad]}.items():
        run = extract_features(items, ["stream"], cache_dir=None, progress=False)
        outcomes[name] = (run.outcome, len(run.failed_ids), len(run.order))
    assert outcomes == {"ok": ("ok", 0, 1), "partial": ("partial", 1, 2), "failed": ("failed", 1, 1)}


# -- the feature cache ---------------------------------------------------------------------------------
def test_a_cache_entry_edited_by_hand_is_not_used(clips, tmp_path, capsys):
    cache = tmp_path / "cache"
    items = collect_inputs([str(clips["whole"])])
    first = extract_features(items, ["siti"], cache_dir=cache, progress=False)
    assert first.computed == 1 and not first.cache_rejected
    (entry,) = cache.rglob("siti-*.json")
    stored = json.loads(entry.read_text())
    assert len(stored["digest"]) == 64
    true_value = stored["values"]["siti_si_max"]
    stored["values"]["siti_si_max"] = 99999.0
    entry.write_text(json.dumps(stored))
    capsys.readouterr()

    second = extract_features(items, ["siti"], cache_dir=cache, progress=False)
    assert second.cached == 0 and second.computed == 1
    assert second.rows["whole"]["results"]["siti"]["values"]["siti_si_max"] == pytest.approx(true_value)
    assert [(p, "digest" in why) for p, why in second.cache_rejected] == [(str(entry), True)]
    err = capsys.readouterr().err
    assert "integrity check" in err and str(entry) in err and "does not match" in err
    # recomputed and written again: the next run uses it
    third = extract_features(items, ["siti"], cache_dir=cache, progress=False)
    assert third.cached == 1 and third.computed == 0 and not third.cache_rejected

    # an entry without a digest (older deepqoe, or the digest removed) and a damaged file
    stored = json.loads(entry.read_text())
    del stored["digest"]
    entry.write_text(json.dumps(stored))
    fourth = extract_features(items, ["siti"], cache_dir=cache, progress=False)
    assert fourth.computed == 1 and "no digest" in fourth.cache_rejected[0][1]
    entry.write_text(entry.read_text()[:40])
    fifth = extract_features(items, ["siti"], cache_dir=cache, progress=False)
    assert fifth.computed == 1 and "unreadable" in fifth.cache_rejected[0][1]


# -- units -----------------------------------------------------------------------------------------------
def test_the_stream_bitrate_is_in_kbps(clips, tmp_path):
    p = clips["whole"]
    v = StreamExtractor().extract(p).values
    assert "stream_bitrate" not in v
    assert v["stream_bitrate_kbps"] == pytest.approx(probe(p).bitrate / 1000.0)
    from_size = p.stat().st_size * 8 / 4.0 / 1000.0  # kbit/s of the whole file
    assert 0.8 * from_size < v["stream_bitrate_kbps"] < 1.05 * from_size
    out = tmp_path / "s.parquet"
    _extract(p, "--out", out, "--extractors", "stream", "--no-cache")
    df = pd.read_parquet(out)
    assert df.loc[0, "stream_bitrate_kbps"] == pytest.approx(v["stream_bitrate_kbps"])
