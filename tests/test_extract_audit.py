"""``deepqoe extract`` and ``convert-c3d-weights`` after a user audit: reference maps with empty or
repeated rows, an unwritable cache, runs where every video fails, outputs that would replace an input,
option values (NaN rates, negative threads, unknown VMAF models), NaN in the table, damaged C3D weights,
half-written outputs, and references that are not what they should be."""

from __future__ import annotations

import json
import math
import warnings

import pandas as pd
import pytest

pytest.importorskip("av")

from deepqoe.cli import main  # noqa: E402
from deepqoe.errors import DeepQoEError  # noqa: E402
from deepqoe.features.video.base import make_extractor  # noqa: E402
from deepqoe.features.video.pipeline import (collect_inputs, extract_features,  # noqa: E402
                                             write_outputs)
from deepqoe.features.video.synth import write_clip  # noqa: E402


def _extract(*args) -> int:
    return main(["extract", *map(str, args), "--no-progress"])


def _lines(err: str) -> list[str]:
    return [ln for ln in err.strip().splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def vids(tmp_path_factory):
    d = tmp_path_factory.mktemp("audit")
    (d / "good").mkdir()
    for i, name in enumerate(("a", "b")):
        write_clip(d / "good" / f"{name}.mp4", seconds=0.6, width=64, height=48, fps=25, crf=30, seed=i)
    write_clip(d / "one.mp4", seconds=0.04, width=64, height=48, fps=25, crf=30)          # 1 frame
    write_clip(d / "short.mp4", seconds=0.2, width=64, height=48, fps=25, crf=30)         # 5 frames < 0.5 s
    write_clip(d / "hifps.mp4", seconds=0.04, width=64, height=48, fps=1000, crf=30)      # 40 frames at 1000/s
    return d


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A working folder of its own, with the cache in it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEEPQOE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


# -- 1. the reference map ------------------------------------------------------------------------------
def test_an_empty_reference_cell_is_an_error_naming_the_row(vids, isolated, capsys):
    m = isolated / "map.csv"
    m.write_text("id,reference\na,\n")
    with pytest.raises(DeepQoEError, match=r"column 'reference', row 2: empty reference"):
        collect_inputs([str(vids / "good" / "a.mp4")], reference_map=str(m))
    assert _extract(vids / "good" / "a.mp4", "-e", "stream", "--reference-map", m, "--out", "o.parquet") == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "map.csv" in err[0] and "row 2" in err[0] and "Error" not in err[0].split(":")[0]
    assert "Traceback" not in "".join(err)


def test_a_video_given_twice_in_the_reference_map_is_an_error(vids, isolated):
    m = isolated / "map.csv"
    m.write_text(f"id,reference\na,{vids / 'good' / 'b.mp4'}\na,{vids / 'one.mp4'}\n")
    with pytest.raises(DeepQoEError, match=r"file '.*map.csv', column 'id', row 3: .*'a'.*twice \(rows 2 and 3\)"):
        collect_inputs([str(vids / "good" / "a.mp4")], reference_map=str(m))
    # by path: two spellings of one file are one video
    m.write_text("path,reference\ngood/a.mp4,one.mp4\n./good/../good/a.mp4,one.mp4\n")
    (isolated / "good").symlink_to(vids / "good")
    with pytest.raises(DeepQoEError, match=r"column 'path', row 3"):
        collect_inputs([str(vids / "good" / "a.mp4")], reference_map=str(m))


# -- 2. a cache that cannot be written ------------------------------------------------------------------
def test_an_unwritable_cache_keeps_the_results_and_warns_once(vids, isolated, capsys):
    blocker = isolated / "blocker"
    blocker.write_text("a file where the cache folder should go")
    rc = _extract(vids / "good", "-e", "stream,siti", "--cache", blocker / "cache", "--out", "o.parquet")
    assert rc == 0
    assert sorted(pd.read_parquet("o.parquet")["id"]) == ["a", "b"]
    err = capsys.readouterr().err
    assert err.count("cannot write the cache") == 1 and "results are kept" in err
    assert "integrity check" not in err


def test_a_cache_write_failing_during_the_run_loses_no_result(vids, isolated, capsys, monkeypatch):
    from deepqoe.features.video.cache import FeatureCache

    def full_disk(self, *a, **k):
        raise DeepQoEError("cannot write this file: No space left on device", file="x.json")

    monkeypatch.setattr(FeatureCache, "put", full_disk)
    run = extract_features(collect_inputs([str(vids / "good")]), ["stream"], cache_dir=isolated / "c",
                           progress=False)
    assert run.outcome == "ok" and run.computed == 2 and "No space left" in run.cache_warning
    assert capsys.readouterr().err.count("cannot write the cache") == 1


def test_cache_pointing_at_a_file_is_refused_up_front(vids, isolated, capsys):
    rc = _extract(vids / "good", "-e", "stream", "--cache", vids / "good" / "a.mp4", "--out", "o.parquet")
    assert rc == 2 and not (isolated / "o.parquet").exists()
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "--cache" in err[0] and "integrity" not in err[0]


# -- 3. nothing succeeded, nothing to do, outputs that replace inputs ----------------------------------
def test_a_run_where_every_video_fails_leaves_the_old_output_alone(vids, isolated, capsys):
    assert _extract(vids / "good", "-e", "stream", "--out", "f.parquet") == 0
    before = {p.name: p.read_bytes() for p in isolated.glob("f.*")}
    assert set(before) == {"f.parquet", "f.errors.csv", "f.meta.json"}
    capsys.readouterr()
    (isolated / "x.mp4").write_text("not a video")
    assert _extract(isolated / "x.mp4", isolated / "missing.mp4", "-e", "stream", "--out", "f.parquet") == 1
    assert {p.name: p.read_bytes() for p in isolated.glob("f.*")} == before
    err = _lines(capsys.readouterr().err)
    assert err[-1].startswith("deepqoe: error: ") and "nothing was written" in err[-1]
    assert any("missing: stream:" in e for e in err) and any("x: stream:" in e for e in err)
    assert "Traceback" not in "".join(err)
    # nothing there before: nothing there after
    assert _extract(isolated / "x.mp4", "-e", "stream", "--out", "g.parquet") == 1
    assert not list(isolated.glob("g.*"))


def test_an_empty_list_is_one_clear_line(isolated, capsys):
    lst = isolated / "list.txt"
    lst.write_text("# no videos yet\n\n")
    assert _extract(lst, "-e", "stream", "--out", "f.parquet") == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "no videos" in err[0] and "list.txt" in err[0]
    assert not list(isolated.glob("f.*"))


def test_out_may_not_replace_the_input_list(vids, isolated, capsys):
    lst = isolated / "mylist.csv"
    text = f"path\n{vids / 'good' / 'a.mp4'}\n"
    lst.write_text(text)
    assert _extract(lst, "-e", "stream", "--out", lst) == 2
    assert lst.read_text() == text and not (isolated / "mylist.errors.csv").exists()
    # nor may a side file (OUT.errors.csv) replace it
    side = isolated / "x.errors.csv"
    side.write_text(text)
    assert _extract(side, "-e", "stream", "--out", isolated / "x.csv") == 2
    assert side.read_text() == text and not (isolated / "x.csv").exists()
    err = _lines(capsys.readouterr().err)
    assert len(err) == 2 and all("--out" in e and "replace" in e for e in err)


# -- 4. option values ---------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["--fps", "nan"], ["--fps", "inf"], ["--fps", "-1"], ["--threads", "-3"],
                                  ["--threads", "0"]])
def test_option_values_out_of_range_are_usage_errors(vids, isolated, args, capsys):
    with pytest.raises(SystemExit) as e:
        _extract(vids / "good", "-e", "siti", *args, "--out", "o.parquet")
    assert e.value.code == 2
    assert args[0] in capsys.readouterr().err and not (isolated / "o.parquet").exists()


def test_fps_zero_is_every_frame_for_siti_and_a_usage_error_for_cnn_frames(vids, isolated, capsys):
    assert _extract(vids / "good" / "a.mp4", "-e", "siti", "--fps", "0", "--out", "o.parquet") == 0
    assert _extract(vids / "good" / "a.mp4", "-e", "cnn-frames", "--fps", "0", "--out", "c.parquet") == 2
    err = _lines(capsys.readouterr().err)
    assert "--fps" in err[-1] and "cnn-frames" in err[-1]
    for bad in (float("nan"), float("inf"), -1.0, "x"):  # the library refuses them too, once, up front
        with pytest.raises(DeepQoEError, match="sampling rate"):
            make_extractor("siti", {"fps": bad})


def test_vmaf_model_and_threads_are_checked_before_any_video(vids, isolated, capsys):
    pytest.importorskip("imageio_ffmpeg")
    common = [vids / "good" / "a.mp4", "-e", "full-reference", "--reference-dir", vids / "good", "--out",
              "o.parquet"]
    assert _extract(*common, "--vmaf-model", "version=no_such_model") == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "--vmaf-model" in err[0] and "vmaf_v0.6.1" in err[0]
    assert _extract(*common, "--vmaf-model", f"path={isolated / 'nope.json'}") == 1  # a missing file: data
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "nope.json" in err[0] and "not found" in err[0]
    assert not (isolated / "o.parquet").exists()
    # a built-in model by its bare name works (the video is its own reference)
    assert _extract(*common, "--vmaf-model", "vmaf_v0.6.1neg") == 0
    assert pd.read_parquet("o.parquet")["fr_vmaf_mean"][0] > 90
    with pytest.raises(DeepQoEError, match="threads"):
        make_extractor("full-reference", {"threads": -3})


def test_a_missing_c3d_weight_file_is_a_data_error(vids, isolated, capsys):
    assert _extract(vids / "good", "-e", "c3d", "--c3d-weights", isolated / "nope.safetensors",
                    "--out", "o.parquet") == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "nope.safetensors" in err[0] and "not found" in err[0]
    (isolated / "w").mkdir()
    assert _extract(vids / "good", "-e", "c3d", "--c3d-weights", isolated / "w", "--out", "o.parquet") == 1
    assert "is a folder" in capsys.readouterr().err


# -- 5. NaN in the table --------------------------------------------------------------------------------
def test_a_1000_fps_clip_has_its_frame_rate(vids):
    v = make_extractor("stream").extract(vids / "hifps.mp4").values
    assert v["stream_fps"] == pytest.approx(1000.0)
    assert math.isfinite(v["stream_bits_per_pixel"]) and v["stream_bits_per_pixel"] > 0


def test_siti_of_a_clip_shorter_than_one_sampling_step_has_a_ti(vids):
    ex = make_extractor("siti", {"fps": 2})
    short = ex.extract(vids / "short.mp4")
    every = make_extractor("siti", {"fps": 0}).extract(vids / "short.mp4")
    assert math.isfinite(short.values["siti_ti_max"]) and short.values == every.values
    assert len(short.per_frame["ti"]) == 4
    one = ex.extract(vids / "one.mp4").values  # one frame: no frame difference, documented NaN
    assert math.isfinite(one["siti_si_max"]) and math.isnan(one["siti_ti_max"])


# -- 6. C3D weights ---------------------------------------------------------------------------------------
@pytest.fixture
def small_c3d(monkeypatch):
    """C3D's layer names with tiny shapes (the real ones are hundreds of MB)."""
    from deepqoe.features.video import c3d

    monkeypatch.setattr(c3d, "EXPECTED_SHAPES", {"conv1.weight": (2, 3), "fc6.bias": (4,)})
    monkeypatch.setattr(c3d, "OPTIONAL_SHAPES", {"fc7.weight": (4, 4)})
    return c3d


def _state(**changes):
    import torch

    s = {"conv1.weight": torch.ones(2, 3), "fc6.bias": torch.zeros(4)}
    s.update(changes)
    return s


def test_c3d_weights_with_nan_bool_or_complex_are_refused(small_c3d, tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    cases = {"nan": (_state(**{"fc6.bias": torch.tensor([0.0, float("nan"), 1.0, 2.0])}), "NaN or infinite"),
             "inf64": (_state(**{"fc6.bias": torch.tensor([1e300, 0, 0, 0], dtype=torch.float64)}), "infinite"),
             "bool": (_state(**{"conv1.weight": torch.ones(2, 3, dtype=torch.bool)}), "bool"),
             "complex": (_state(**{"fc7.weight": torch.zeros(4, 4, dtype=torch.complex64)}), "complex64")}
    for name, (state, why) in cases.items():
        src = tmp_path / f"{name}.pickle"
        torch.save(state, src)
        dst = tmp_path / f"{name}.safetensors"
        with pytest.raises(DeepQoEError, match=why):
            small_c3d.convert_c3d_checkpoint(str(src), str(dst))
        assert not dst.exists()
    assert main(["convert-c3d-weights", str(tmp_path / "nan.pickle"), str(tmp_path / "n.safetensors")]) == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "fc6.bias" in err[0] and "NaN" in err[0]
    # weights made elsewhere are checked when extract loads them
    bad = tmp_path / "bad.safetensors"
    save_file(_state(**{"fc6.bias": torch.full((4,), float("nan"))}), str(bad))
    with pytest.raises(DeepQoEError, match="NaN or infinite"):
        small_c3d.load_c3d_weights(str(bad))
    good = tmp_path / "good.pickle"
    torch.save(_state(), good)
    assert small_c3d.convert_c3d_checkpoint(str(good), str(tmp_path / "good.safetensors"))


def test_real_c3d_weights_with_nan_are_refused_by_extract(vids, tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    from deepqoe.features.video.c3d import build_c3d

    state = {k: v.contiguous() for k, v in build_c3d().state_dict().items()}
    state["fc6.bias"] = torch.full((4096,), float("nan"))
    w = tmp_path / "nan.safetensors"
    save_file(state, str(w))
    del state
    assert _extract(vids / "good", "-e", "c3d", "--c3d-weights", w, "--no-cache", "--out",
                    tmp_path / "o.parquet") == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "fc6.bias" in err[0] and not (tmp_path / "o.parquet").exists()


def test_convert_c3d_weights_refuses_bad_sources_and_destinations(small_c3d, tmp_path, capsys):
    import pickle

    import torch

    src = tmp_path / "c3d.pickle"
    torch.save(_state(), src)
    original = src.read_bytes()
    assert main(["convert-c3d-weights", str(src), str(src)]) == 2            # the source itself
    assert main(["convert-c3d-weights", str(src), str(tmp_path / "c3d.pt")]) == 2  # not .safetensors
    assert src.read_bytes() == original and not (tmp_path / "c3d.pt").exists()
    err = _lines(capsys.readouterr().err)
    assert len(err) == 2 and "source" in err[0] and ".safetensors" in err[1]

    text = tmp_path / "text.pickle"
    text.write_text("hello")
    empty = tmp_path / "empty.pickle"
    empty.write_bytes(b"")
    folder = tmp_path / "folder.pickle"
    folder.mkdir()
    for f, why in ((text, "not a torch checkpoint"), (empty, "empty"), (folder, "is a folder")):
        assert main(["convert-c3d-weights", str(f), str(tmp_path / "o.safetensors")]) == 1
        err = _lines(capsys.readouterr().err)
        assert len(err) == 1 and why in err[0] and "101" not in err[0]

    evil = tmp_path / "evil.pickle"
    with open(evil, "wb") as fh:
        pickle.dump({"conv1.weight": _Evil()}, fh)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["convert-c3d-weights", str(evil), str(tmp_path / "o.safetensors")]) == 1
    assert not [w for w in caught if issubclass(w.category, UserWarning)]
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "refused" in err[0] and "Warning" not in err[0]


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


# -- 7. outputs written all together --------------------------------------------------------------------
@pytest.mark.parametrize("side, extra", [("o.errors.csv", []), ("o.meta.json", []),
                                         ("o.frames.parquet", ["--per-frame"])])
def test_a_side_file_that_cannot_be_written_stops_the_run_before_any_output(vids, isolated, side, extra,
                                                                            capsys):
    (isolated / side).mkdir()
    assert _extract(vids / "good", "-e", "stream", *extra, "--out", "o.parquet") == 2
    assert sorted(p.name for p in isolated.glob("o.*")) == [side]
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and side in err[0] and "folder" in err[0]


def test_write_outputs_writes_all_or_nothing(vids, tmp_path):
    run = extract_features(collect_inputs([str(vids / "good")]), ["siti"], cache_dir=None, progress=False)
    (tmp_path / "f.frames.parquet").mkdir()
    with pytest.raises(DeepQoEError, match="folder"):
        write_outputs(run, tmp_path / "f.parquet", per_frame=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.frames.parquet"]
    written = write_outputs(run, tmp_path / "f.parquet")
    assert set(written) == {"features", "errors", "meta"}
    assert json.loads(written["meta"].read_text())["ok"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".deepqoe-tmp")]


def test_a_per_frame_file_of_an_earlier_run_is_kept_and_noted(vids, isolated, capsys):
    assert _extract(vids / "good", "-e", "siti", "--per-frame", "--out", "o.parquet") == 0
    frames = (isolated / "o.frames.parquet").read_bytes()
    capsys.readouterr()
    assert _extract(vids / "good" / "a.mp4", "-e", "stream", "--out", "o.parquet") == 0
    assert (isolated / "o.frames.parquet").read_bytes() == frames
    err = capsys.readouterr().err
    assert "note:" in err and "o.frames.parquet" in err and "earlier run" in err


# -- 8. references that are not what they should be -----------------------------------------------------
def test_reference_dir_that_is_a_file_says_so(vids, isolated, capsys):
    assert _extract(vids / "good" / "a.mp4", "-e", "full-reference", "--reference-dir", vids / "good" / "a.mp4",
                    "--out", "o.parquet") == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "is a file, not a folder" in err[0] and "not found" not in err[0]


def test_a_reference_that_is_a_folder_says_so(vids, isolated, capsys):
    pytest.importorskip("imageio_ffmpeg")
    (isolated / "refs.mp4").mkdir()
    lst = isolated / "list.csv"
    lst.write_text(f"path,reference\n{vids / 'good' / 'a.mp4'},refs.mp4\n{vids / 'good' / 'b.mp4'},gone.mp4\n")
    assert _extract(lst, "-e", "full-reference", "--out", "o.parquet") == 1
    errors = capsys.readouterr().err
    assert "refs.mp4: is a folder" in errors and "gone.mp4: not found" in errors
