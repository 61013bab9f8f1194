"""``deepqoe sessions compare A B``: two sets of sessions scored by one model, each statistic's difference
B - A with a bootstrap interval (paired by session id when both sets hold the same ids)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepqoe.cli import main
from deepqoe.errors import DeepQoEError
from deepqoe.predictor import load_predictor
from deepqoe.sessions.compare import compare_sessions


def _session(sid, quality, stalls=()):
    return {"id": sid, "segments": [{"start": 4.0 * k, "duration": 4.0, "quality": float(q)}
                                    for k, q in enumerate(quality)],
            "stalls": [{"start": a, "duration": b} for a, b in stalls]}


def _sets(n=30, seed=0):
    """The same traces through two players: A stalls in two of three sessions, B never does and plays 2 points
    of quality lower."""
    rng = np.random.default_rng(seed)
    a, b = [], []
    for i in range(n):
        q = np.clip(rng.uniform(50, 95) + rng.normal(0, 4, 12), 0, 100)
        a.append(_session(f"t{i:03d}", q, [(10.0, 3.0)] if i % 3 else []))
        b.append(_session(f"t{i:03d}", q - 2))
    return a, b


@pytest.fixture(scope="module")
def streaming():
    return load_predictor("streaming")


def test_the_same_traces_are_compared_pair_by_pair(streaming):
    a, b = _sets()
    res = compare_sessions(streaming, a, b[::-1])          # B's order does not matter: paired by id
    assert res["paired"] and res["sets"] == {"A": 30, "B": 30}
    st = {s["statistic"]: s for s in res["statistics"]}
    assert st["with_stalls"]["A"] == pytest.approx(20 / 30) and st["with_stalls"]["B"] == 0
    assert st["score_mean"]["difference"] > 0 and st["score_mean"]["excludes_zero"]      # no stalls wins here
    assert st["score_mean"]["low"] <= st["score_mean"]["difference"] <= st["score_mean"]["high"]
    assert st["p_pow"]["difference"] < 0     # fewer viewers poor or worse
    # paired: the interval of a difference is that of the per-trace differences
    pa, _ = streaming.predict_sessions(a, curve=False, interval=None)
    pb, _ = streaming.predict_sessions(b, curve=False, interval=None)
    d = np.array([y["score"] for y in pb]) - np.array([x["score"] for x in pa])
    assert st["score_mean"]["difference"] == pytest.approx(d.mean())
    assert st["score_mean"]["high"] - st["score_mean"]["low"] < 4 * d.std() / np.sqrt(len(d)) * 1.2
    again = compare_sessions(streaming, a, b[::-1])
    assert again["statistics"] == res["statistics"]       # seeded


def test_a_set_against_itself_differs_by_nothing(streaming):
    a, _ = _sets(10)
    st = {s["statistic"]: s for s in compare_sessions(streaming, a, a)["statistics"]}
    assert all(s["difference"] == 0 and s["low"] == 0 == s["high"] and not s["excludes_zero"] for s in st.values())


def test_other_ids_are_independent_sets_and_paired_yes_refuses_them(streaming):
    a, b = _sets(12)
    for s in b:
        s["id"] = "b-" + s["id"]
    res = compare_sessions(streaming, a, b, labels=("old", "new"))
    assert not res["paired"] and res["labels"] == ["old", "new"]
    assert compare_sessions(streaming, a, _sets(12)[1], paired="no")["paired"] is False
    with pytest.raises(DeepQoEError, match="same session ids in both sets; old has 12, new 12, 0 in common"):
        compare_sessions(streaming, a, b, labels=("old", "new"), paired="yes")
    with pytest.raises(DeepQoEError, match="at least 2 in each set"):
        compare_sessions(streaming, a[:1], b)


class _MeanQuality:
    """A stand-in session model whose score is the mean quality / 20 (fast), for the interval's coverage."""
    is_session = True

    def require_sessions(self):
        pass

    def predict_sessions(self, sessions, **kw):
        from deepqoe.predictor import _as_sessions

        ss, bad = _as_sessions(sessions)
        return [{"id": s.id, "score": float(np.mean(s.quality)) / 20} for s in ss], bad


def test_the_interval_covers_as_it_says_when_both_sets_come_from_one_population():
    """Two independent sets drawn from one population: the 90 % interval of the mean difference excludes 0 in
    about 10 % of comparisons (checked over 150 comparisons: 3-20 %)."""
    rng = np.random.default_rng(5)
    excluded = 0
    for r in range(150):
        a = [_session(f"a{i}", rng.uniform(20, 100, 3)) for i in range(25)]
        b = [_session(f"b{i}", rng.uniform(20, 100, 3)) for i in range(25)]
        res = compare_sessions(_MeanQuality(), a, b, n_boot=400, level=0.9, seed=r)
        excluded += next(s for s in res["statistics"] if s["statistic"] == "score_mean")["excludes_zero"]
    assert 0.03 <= excluded / 150 <= 0.2, excluded


def test_the_command_line(tmp_path, capsys):
    a, b = _sets(8)
    for name, ss in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        for s in ss:
            (tmp_path / name / f"{s['id']}.json").write_text(json.dumps(s))
    (tmp_path / "b" / "broken.json").write_text("{not json")
    capsys.readouterr()
    code = main(["sessions", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--labels", "old", "new"])
    out, err = capsys.readouterr()
    assert code == 3, err                                   # one file of B could not be read: partial
    assert "broken.json" in err and "mean score" in out and "old (8)" in out and "paired by session id" in out
    code = main(["sessions", "compare", str(tmp_path / "a"), str(tmp_path / "a"), "--json", "-q"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and res["paired"] and res["inputs"]["A"] == str(tmp_path / "a")
    code = main(["sessions", "compare", str(tmp_path / "a"), str(tmp_path / "a"), "--labels", "x", "x"])
    assert code == 2
    code = main(["sessions", "compare", str(tmp_path / "a"), str(tmp_path / "a"), "--model", "upec-qoe-lab"])
    assert code == 1 and "session" in capsys.readouterr().err
