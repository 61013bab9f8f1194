"""A damaged video without a reference is said to be damaged (what the user must fix first), not only to
lack a reference (a user audit: a corrupt upload read 'no reference video')."""

from __future__ import annotations

from deepqoe.cli import main
from deepqoe.features.video.synth import write_clip


def test_a_damaged_video_is_named_as_damaged_before_its_missing_reference(tmp_path, capsys):
    (tmp_path / "v").mkdir()
    (tmp_path / "ref").mkdir()
    write_clip(tmp_path / "v" / "good.mp4", seconds=0.5, width=160, height=120)
    data = (tmp_path / "v" / "good.mp4").read_bytes()
    (tmp_path / "v" / "cut.mp4").write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    code = main(["extract", str(tmp_path / "v"), "-e", "full-reference", "--reference-dir", str(tmp_path / "ref"),
                 "--out", str(tmp_path / "f.parquet")])
    err = capsys.readouterr().err
    assert code == 1
    cut = [ln for ln in err.splitlines() if ln.strip().startswith("cut:")]
    good = [ln for ln in err.splitlines() if ln.strip().startswith("good:")]
    assert len(cut) == 1 and "not a readable video" in cut[0] and "no reference" not in cut[0], err
    assert len(good) == 1 and "no reference video named 'good'" in good[0], err
