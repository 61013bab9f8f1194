"""``deepqoe sessions`` sub-commands."""

import json

import pandas as pd

from deepqoe.sessions.cli import register


def _main(argv):
    import argparse

    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    register(sub)
    args = p.parse_args(argv)
    return args.func(args)


def _session(i, **kw):
    d = {"id": f"s{i}", "segments": [{"start": k * 4, "duration": 4, "bitrate_kbps": 2000 + 100 * i,
                                      "height": 720} for k in range(5)],
         "stalls": [[0, 1]], "device": "mobile"}
    d.update(kw)
    return d


def test_convert_and_features(tmp_path):
    src = tmp_path / "in.json"
    src.write_text(json.dumps([_session(0), _session(1), _session(2, device="fridge")]))
    out = tmp_path / "out.json"
    assert _main(["sessions", "convert", str(src), "--out", str(out)]) == 3  # one failure reported: partial success
    assert len(json.loads(out.read_text())["sessions"]) == 2
    feats = tmp_path / "f.csv"
    assert _main(["sessions", "features", str(out), "--out", str(feats), "--series", str(tmp_path / "s.npz"),
                  "--length", "8"]) == 0
    df = pd.read_csv(feats)
    assert df["session_id"].tolist() == ["s0", "s1"] and df["startup_delay"].tolist() == [1, 1]
    import numpy as np

    z = np.load(tmp_path / "s.npz")
    assert z["X"].shape == (2, 8, 4)
