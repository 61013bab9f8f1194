"""`stream_bitrate_kbps` is the video stream's own bitrate: the same video remuxed into MP4, Matroska or
MPEG-TS, with or without an audio track, gives the same value (it was the declared rate of the stream or of
the whole file: 287 kbit/s in MP4, 444-568 kbit/s in Matroska and MPEG-TS with audio; a user audit, 2026-12-07)."""

from __future__ import annotations

import subprocess

import pytest

from deepqoe.features.video.stream import StreamExtractor
from deepqoe.features.video.synth import write_clip


def _ffmpeg(*args):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *map(str, args)], check=True)


def test_the_stream_bitrate_is_the_videos_own_in_any_container(tmp_path):
    video = write_clip(tmp_path / "v.mp4", seconds=2.0, width=320, height=240)
    sine = ["-f", "lavfi", "-i", "sine=frequency=440:duration=2"]
    _ffmpeg("-i", video, *sine, "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-b:a", "256k",
            tmp_path / "with_audio.mkv")
    _ffmpeg("-i", video, *sine, "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-b:a", "256k",
            tmp_path / "with_audio.ts")
    _ffmpeg("-i", video, *sine, "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-b:a", "256k",
            tmp_path / "with_audio.mp4")
    ex = StreamExtractor()
    rates = {p.name: ex.extract(p).values["stream_bitrate_kbps"]
             for p in (tmp_path / "v.mp4", tmp_path / "with_audio.mkv", tmp_path / "with_audio.ts",
                       tmp_path / "with_audio.mp4")}
    base = rates["v.mp4"]
    assert base > 0
    for name, r in rates.items():  # within 1 % (MPEG-TS packets carry a few bytes more)
        assert r == pytest.approx(base, rel=0.01), rates
    bpp = ex.extract(tmp_path / "with_audio.mkv").values["stream_bits_per_pixel"]
    assert bpp == pytest.approx(base * 1000 / (320 * 240 * ex.extract(video).values["stream_fps"]), rel=0.01)


def test_reference_dir_lookup_names_ambiguity_folders_and_misses(tmp_path):
    """--reference-dir: two references with the video's name is an error naming both (one was picked in
    sort order), a folder with a video's name is "is a folder", and a miss names the name looked for."""
    from deepqoe.features.video.pipeline import collect_inputs, extract_features

    vids, refs = tmp_path / "vids", tmp_path / "refs"
    vids.mkdir(), refs.mkdir()
    for name in ("amb", "fold", "miss"):
        write_clip(vids / f"{name}.mp4", seconds=0.5, width=64, height=48)
    write_clip(refs / "amb.mp4", seconds=0.5, width=64, height=48)
    (refs / "old").mkdir()
    write_clip(refs / "old" / "amb.mkv", seconds=0.5, width=64, height=48)
    (refs / "fold.mp4").mkdir()
    items = {it.id: it for it in collect_inputs([str(vids)], reference_dir=str(refs))}
    assert items["amb"].reference is None and "more than one reference video named 'amb'" in items["amb"].reference_problem
    assert "amb.mp4" in items["amb"].reference_problem and "old/amb.mkv" in items["amb"].reference_problem
    assert items["fold"].reference == str(refs / "fold.mp4")
    assert items["miss"].reference is None and "no reference video named 'miss'" in items["miss"].reference_problem
    run = extract_features(list(items.values()), ["full-reference"], cache_dir=None, progress=False)
    errors = dict(zip(run.errors_table()["id"], run.errors_table()["error"]))
    assert "more than one reference video" in errors["amb"] and "is a folder" in errors["fold"]
    assert "no reference video named 'miss'" in errors["miss"]


def test_the_per_frame_table_holds_the_videos_of_the_features_table_only(tmp_path):
    """A video that failed one extractor keeps its row in the features table (the failed extractor's
    columns empty); the per-frame table holds the per-frame values of the extractors that succeeded on
    it, and none of the one that failed."""
    from deepqoe.features.video.pipeline import collect_inputs, extract_features

    vids = tmp_path / "vids"
    vids.mkdir()
    write_clip(vids / "ok.mp4", seconds=0.5, width=320, height=240)
    write_clip(vids / "tiny.mp4", seconds=0.5, width=80, height=60)   # too small for NIQE, fine for siti
    run = extract_features(collect_inputs([str(vids)]), ["siti", "niqe"], cache_dir=None, progress=False)
    assert run.failed_ids == ["tiny"] and run.partial_ids == ["tiny"]
    assert list(run.features_table()["id"]) == ["ok", "tiny"]
    frames = run.per_frame_table()
    assert set(frames["id"]) == {"ok", "tiny"} and len(frames) > 0
    assert set(frames[frames["id"] == "tiny"]["extractor"]) == {"siti"}
    assert set(frames[frames["id"] == "ok"]["extractor"]) == {"siti", "niqe"}


def test_an_mp4_cut_before_its_index_is_said_to_be_one(tmp_path):
    """An MP4 whose index (moov, written last unless faststart) was cut off reads as "not a readable video";
    the message now says why: media data, no index. A text file with an .mp4 name gets no such hint."""
    from deepqoe.errors import DeepQoEError
    from deepqoe.features.video.decode import open_video

    clip = write_clip(tmp_path / "whole.mp4", seconds=1.0, width=160, height=120)
    data = clip.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat") > 0  # the index is at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DeepQoEError) as e:
        open_video(cut)
    assert "no index (no 'moov' box)" in e.value.message and "\n" not in e.value.message
    text = tmp_path / "notes.mp4"
    text.write_text("This is not a video at all, just some notes.\n" * 10)
    with pytest.raises(DeepQoEError) as e:
        open_video(text)
    assert "moov" not in e.value.message


def test_a_failed_video_is_one_line_naming_its_file_and_every_extractor(tmp_path, capsys):
    """stderr: ``ID: EXTRACTORS: ERROR (FILE)``, the extractors that failed alike on one line (it named the
    first extractor only, and the id without the file)."""
    from deepqoe.cli import main

    vids = tmp_path / "vids"
    vids.mkdir()
    write_clip(vids / "ok.mp4", seconds=0.5, width=160, height=120)
    (vids / "empty.mp4").write_bytes(b"")
    code = main(["extract", str(vids), "-e", "stream,siti", "--no-cache", "--no-progress",
                 "-o", str(tmp_path / "f.parquet")])
    err = capsys.readouterr().err
    assert code == 3, err
    line = [ln for ln in err.splitlines() if ln.strip().startswith("empty:")]
    assert len(line) == 1, err
    assert "stream,siti" in line[0] or "siti,stream" in line[0], line
    assert line[0].rstrip().endswith(f"({vids / 'empty.mp4'})"), line
