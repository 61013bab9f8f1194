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
    assert st["with_stalls"]["values"]["A"] == pytest.approx(20 / 30) and st["with_stalls"]["values"]["B"] == 0
    assert st["score_mean"]["difference"] > 0 and st["score_mean"]["excludes_zero"]      # no stalls wins here
    assert st["score_mean"]["low"] <= st["score_mean"]["difference"] <= st["score_mean"]["high"]
    assert st["p_pow"]["difference"] < 0     # fewer viewers poor or worse
    # paired: the interval of a difference is that of the per-trace differences
    pa, _ = streaming.predict_sessions(a, curve=False, interval=None)
    pb, _ = streaming.predict_sessions(b, curve=False, interval=None)
    d = np.array([y["score"] for y in pb]) - np.array([x["score"] for x in pa])
    assert st["score_mean"]["difference"] == pytest.approx(d.mean())
    from scipy import stats

    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))   # Student's t of the differences
    assert (st["score_mean"]["low"], st["score_mean"]["high"]) == pytest.approx((d.mean() - half, d.mean() + half))
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
    with pytest.raises(DeepQoEError, match="at least 2 session ids in both sets; old has 12, new 12, 0 in common"):
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
    about 10 % of comparisons, with 25 sessions a set and with 3 (a percentile bootstrap excluded it in a third
    of 3-session comparisons); checked over 300 comparisons each: 5-16 %."""
    rng = np.random.default_rng(5)
    for n in (25, 3):
        excluded = 0
        for r in range(300):
            a = [_session(f"a{i}", rng.uniform(20, 100, 3)) for i in range(n)]
            b = [_session(f"b{i}", rng.uniform(20, 100, 3)) for i in range(n)]
            res = compare_sessions(_MeanQuality(), a, b, n_boot=100, level=0.9, seed=r)
            excluded += next(s for s in res["statistics"] if s["statistic"] == "score_mean")["excludes_zero"]
        assert 0.05 <= excluded / 300 <= 0.16, (n, excluded)


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
    assert code == 2 and "needs a session model" in capsys.readouterr().err


def test_labels_are_kept_apart_from_the_numbers(streaming):
    """A label named like a field of the result (low, high, statistic...) cannot overwrite it."""
    a, b = _sets(6)
    res = compare_sessions(streaming, a, b, labels=("low", "high"))
    plain = compare_sessions(streaming, a, b)
    for s, t in zip(res["statistics"], plain["statistics"]):
        assert s["values"] == {"low": t["values"]["A"], "high": t["values"]["B"]}
        assert (s["low"], s["high"], s["difference"]) == (t["low"], t["high"], t["difference"])
    from deepqoe.sessions.compare import comparison_table

    assert "mean score" in comparison_table(compare_sessions(streaming, a, b, labels=("statistic", "other")))


def test_a_session_missing_from_one_set_pairs_the_others_with_a_note(streaming):
    a, b = _sets(12)
    res = compare_sessions(streaming, a, b[:-1])          # 11 of 12 ids in common: still the same traces
    assert res["paired"] and res["sets"] == {"A": 11, "B": 11}
    assert any("paired on the 11 session ids both sets hold: 1 of A and 0 of B" in n for n in res["notes"])
    assert not any("fewer than 10" in n for n in res["notes"])
    few = compare_sessions(streaming, a[:3], b[:3])
    assert sum("set A has 3 session(s)" in n or "set B has 3 session(s)" in n for n in few["notes"]) == 2


def test_the_median_bootstrap_is_drawn_in_chunks():
    """The median's bootstrap never holds all resamples of a large set at once (memory grew as resamples x
    sessions): a 100000-resample comparison of 300 sessions a set runs."""
    import tracemalloc

    rng = np.random.default_rng(0)
    a = [_session(f"a{i}", rng.uniform(20, 100, 2)) for i in range(300)]
    b = [_session(f"b{i}", rng.uniform(20, 100, 2)) for i in range(300)]
    tracemalloc.start()
    compare_sessions(_MeanQuality(), a, b, n_boot=100_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 100e6, peak      # the whole index array would be 100000 x 300 x 8 bytes = 240 MB


def test_bad_option_values_are_usage_errors_naming_the_option(tmp_path, capsys):
    a, _ = _sets(3)
    (tmp_path / "a").mkdir()
    for s in a:
        (tmp_path / "a" / f"{s['id']}.json").write_text(json.dumps(s))
    for opt, words in ((["--level", "95"], "--level"), (["--level", "nan"], "--level"), (["--bootstrap", "99"],
                       "--bootstrap"), (["--seed", "-1"], "--seed"), (["--scale", "bogus"], "--scale"),
                       (["--model", "upec-qoe-lab"], "needs a session model")):
        capsys.readouterr()
        code = main(["sessions", "compare", str(tmp_path / "a"), str(tmp_path / "a"), *opt])
        err = capsys.readouterr().err
        assert code == 2 and words in err and "Traceback" not in err, (opt, err)


def test_a_set_too_small_names_its_bad_sessions_and_json_lists_every_failure(tmp_path, capsys):
    a, b = _sets(4)
    for name, ss in (("one", a[:1]), ("b", b)):
        (tmp_path / name).mkdir()
        for s in ss:
            (tmp_path / name / f"{s['id']}.json").write_text(json.dumps(s))
    bad = dict(a[1], segments=[dict(a[1]["segments"][0], duration=0)])
    (tmp_path / "one" / "bad.json").write_text(json.dumps(bad))
    capsys.readouterr()
    code = main(["sessions", "compare", str(tmp_path / "one"), str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 1 and "bad.json" in err and "set A holds 1 readable session(s)" in err, err
    (tmp_path / "b" / "broken.json").write_text("{")
    code = main(["sessions", "compare", str(tmp_path / "b"), str(tmp_path / "b"), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 3 and len(res["failures"]["A"]) == 1 and "broken.json" in res["failures"]["A"][0]


def test_an_interval_never_reaches_past_the_differences_possible(streaming):
    """On 2 sessions a set, Student's t (1 degree of freedom) reaches far past what a difference can be: a share
    of sessions with a stall cannot differ by more than 100 points, a 1-5 score by more than 4; the interval is
    clipped there, and stays unclipped where it fits."""
    a = [_session("a0", [90] * 6, [(8.0, 2.0)]), _session("a1", [90] * 6)]
    b = [_session("b0", [40] * 6), _session("b1", [95] * 6, [(8.0, 6.0)])]
    st = {s["statistic"]: s for s in compare_sessions(streaming, a, b, paired="no")["statistics"]}
    ws = st["with_stalls"]
    assert (ws["low"], ws["high"]) == (-1.0, 1.0)                     # t alone: about -6.4 to +6.4
    assert -4.0 <= st["score_mean"]["low"] and st["score_mean"]["high"] <= 4.0
    assert st["startup_delay"]["low"] == st["startup_delay"]["high"] == 0   # no startup in either set
    sa = compare_sessions(streaming, a, b, paired="no", scale="0-100")["statistics"]
    assert all(-100 <= s["low"] <= s["high"] <= 100 for s in sa if s["statistic"].startswith("score"))
    a30, b30 = _sets()
    st30 = {s["statistic"]: s for s in compare_sessions(streaming, a30, b30)["statistics"]}
    assert -1 < st30["with_stalls"]["low"] < st30["with_stalls"]["high"] < 0   # 30 pairs: inside, untouched


def test_sets_that_differ_in_kind_of_input_get_a_note(streaming):
    """One set with a quality metric, the other with bitrates only: the streaming model scores the second kind
    lower (its learned offset for sessions without a metric), so the difference mixes the players with the kind
    of input; a note says so. Sets of one kind get none."""
    a, _ = _sets(12)
    bitrates = [{**s, "segments": [{"start": g["start"], "duration": g["duration"], "bitrate_kbps": 3000, "height": 1080,
                                     "width": 1920, "fps": 30} for g in s["segments"]]} for s in a]
    res = compare_sessions(streaming, a, bitrates)
    mixed = [n for n in res["notes"] if "quality metric" in n]
    assert len(mixed) == 1 and "set A gives a quality metric (quality, quality_per_second) for 12 of 12" in mixed[0]
    assert "set B for 0 of 12" in mixed[0]
    assert not any("quality metric" in n for n in compare_sessions(streaming, a, a)["notes"])
    assert not any("quality metric" in n for n in compare_sessions(streaming, bitrates, bitrates)["notes"])
