"""The structured streaming model (deepqoe.sessions.qoe_model): monotone and bounded by construction,
curves on the wall-clock timeline, switches as representation changes, save / load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.nn.functional import softplus as F_softplus

from conftest import ladder_session, random_ladder_sessions, synthetic_mos
from deepqoe.errors import DeepQoEError
from deepqoe.sessions import Session
from deepqoe.sessions.qoe_model import QualityMapping, SessionQoEModel, TrainingData, make_batch, wall_points

session = ladder_session
random_sessions = random_ladder_sessions


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    sessions = random_sessions(60, rng) + random_sessions(30, rng, with_quality=True)
    mapping = QualityMapping(bias=5.0, w_bpp=0.45, w_res=0.9, w_fps=0.0, w_h=1.0, codec_offset={"h264": 0.0, "hevc": 0.35})
    y = synthetic_mos(sessions, mapping)
    data = TrainingData(sessions, y, np.array(["a"] * 60 + ["b"] * 30))
    return SessionQoEModel(epochs=40, n_members=2).fit(data, mapping)


def test_learns_the_synthetic_relation(model):
    rng = np.random.default_rng(1)
    test = random_sessions(40, rng)
    p = model.predict_sessions(test)
    from scipy.stats import spearmanr

    assert spearmanr(p, synthetic_mos(test, model.mapping_))[0] > 0.6


def test_monotone_in_every_impairment_for_any_weights(model):
    """Monotonicity is structural: it holds for the trained weights and for random ones."""
    rng = np.random.default_rng(2)
    base = random_sessions(30, rng, with_quality=True)
    for trial in range(2):
        if trial:  # scramble every weight: the relations must still hold
            with torch.no_grad():
                for p in model.net_.parameters():
                    p.add_(torch.randn_like(p))
        for s in base:
            d = s.to_dict()
            ref = model.predict_sessions([s])[0]
            more_stall = json.loads(json.dumps(d))
            end = d["segments"][-1]["start"] + d["segments"][-1]["duration"]
            if d["stalls"][-1]["start"] >= end - 0.5:
                more_stall["stalls"][-1]["duration"] += 3.0
            else:
                more_stall["stalls"].append({"start": end - 0.5, "duration": 3.0})
            longer_start = json.loads(json.dumps(d))
            longer_start["stalls"][0]["duration"] += 5.0
            better = json.loads(json.dumps(d))
            for seg in better["segments"]:
                seg["quality"] = min(100.0, seg["quality"] + 10)
            switch = json.loads(json.dumps(d))  # same quality, a new representation in the middle
            for i, seg in enumerate(switch["segments"]):
                seg["representation"] = "b" if i == len(switch["segments"]) // 2 else "a"
            same_rep = json.loads(json.dumps(d))
            for seg in same_rep["segments"]:
                seg["representation"] = "a"
                seg["height"], seg["width"] = 720, 1280
            p = {k: model.predict_sessions([Session.from_dict(v)])[0]
                 for k, v in (("stall", more_stall), ("startup", longer_start), ("better", better))}
            assert p["stall"] <= ref + 1e-6
            assert p["startup"] <= ref + 1e-6
            assert p["better"] >= ref - 1e-6
            sw = model.predict_sessions([Session.from_dict(switch), Session.from_dict(same_rep)])
            assert sw[0] <= sw[1] + 1e-6


def _without_rebuffering(s):
    d = s.to_dict()
    d["stalls"] = [st for st in d.get("stalls", []) if st["start"] <= 1e-6]  # the startup stays
    return Session.from_dict(d)


def test_rebuffering_guard_bounds_the_score_for_any_weights(model):
    """Beyond a stall share of 0.3 the score above the floor is at most the same session's without
    rebuffering times (1 - share) / 0.7, for the trained weights and for random ones: rebuffering that
    outlasts the playback cannot leave a good score, however the penalties learned inside the data range."""
    assert model.stall_guard == 0.3
    rng = np.random.default_rng(5)
    sessions = random_sessions(30, rng, with_quality=True) + random_sessions(10, rng)
    heavy = session("heavy", [2] * 150, [(0.0, 1.0)] + [(20.0 * k + 1.0, 30.0) for k in range(29)],
                    quality=[95.0] * 150)  # 600 s of media, 29 stalls of 30 s
    sessions += [heavy] + [_steady(f"long{d}", 90.0, [(0.0, 1.0), (30.0, d)]) for d in (60.0, 600.0, 6000.0)]
    for trial in range(2):
        if trial:
            with torch.no_grad():
                for p in model.net_.parameters():
                    p.add_(torch.randn_like(p))
        with_stalls = model.predict_sessions(sessions)
        clean = model.predict_sessions([_without_rebuffering(s) for s in sessions])
        stalled = np.array([sum(d for st, d in zip(s.stall_start, s.stall_duration) if st > 1e-6) for s in sessions])
        playing = np.array([s.media_duration for s in sessions]) / (np.array([s.media_duration for s in sessions])
                                                                     + stalled)
        assert np.all(with_stalls - 1 <= (clean - 1) * np.minimum(1.0, playing / 0.7) + 1e-6)
        assert with_stalls[-4] <= 1 + 4 * 0.41 / 0.7 and with_stalls[-1] < 1.06  # 60 s played, 6000 s stalled


def test_model_files_without_a_stall_guard_have_none(tmp_path):
    """Files written before the rebuffering guard (the startup wait) name no stall_guard (startup_weight):
    they load without one."""
    from deepqoe.persistence import load_model

    m, sessions = _small_model(20, 4, epochs=5, stall_guard=None, startup_weight=None)
    d = m.save(tmp_path / "old", extra={"name": "old"})
    meta = json.loads((d / "model.json").read_text())
    assert meta["params"]["stall_guard"] is None and meta["params"]["startup_weight"] is None
    del meta["params"]["stall_guard"], meta["params"]["startup_weight"]
    (d / "model.json").write_text(json.dumps(meta))
    loaded = load_model(d)
    assert loaded.stall_guard is None and loaded.net_[0].guard_r0 is None
    assert loaded.startup_weight is None and loaded.net_[0].startup_weight is None
    np.testing.assert_allclose(loaded.predict_sessions(sessions), m.predict_sessions(sessions), atol=1e-6)
    assert SessionQoEModel(fusion="logit").stall_guard is None
    assert SessionQoEModel(fusion="logit").startup_weight is None
    for key, bad in (("stall_guard", 0.0), ("stall_guard", 1.0), ("stall_guard", -0.2),
                     ("startup_weight", 0.0), ("startup_weight", 1.5)):
        with pytest.raises(ValueError, match=key):
            _small_model(5, 3, epochs=1, **{key: bad})
    for key, bad in (("stall_guard", 2.0), ("startup_weight", -1.0)):
        bad_meta = json.loads(json.dumps(meta))
        bad_meta["params"][key] = bad
        (d / "model.json").write_text(json.dumps(bad_meta))
        with pytest.raises(DeepQoEError, match=key):
            load_model(d)


def _with_startup(s, startup: float):
    d = s.to_dict()
    d["stalls"] = [st for st in d.get("stalls", []) if st["start"] > 1e-6]
    if startup > 0:
        d["stalls"].insert(0, {"start": 0.0, "duration": startup})
    return Session.from_dict(d)


def test_startup_wait_costs_its_time_share_for_any_weights():
    """A wait before playback costs at least its share of the session's time, counted at a third (ITU-T
    P.1203.3's weight of initial loading against stalling): the score above the floor is at most the same
    session's without a startup times media / (media + startup / 3), for the trained weights and for random
    ones. A model without the term (startup_weight=None) prices an 8-s wait near nothing."""
    model, _ = _small_model(40, 8, epochs=20)
    assert model.startup_weight == pytest.approx(1 / 3)
    rng = np.random.default_rng(8)
    base = random_sessions(20, rng, with_quality=True) + [_steady("s60", 90.0, []), _steady("s10", 90.0, [], n=5)]
    waits = (0.5, 2.0, 8.0, 30.0)
    trained = None
    for trial in range(2):
        if trial:
            with torch.no_grad():
                for p in model.net_.parameters():
                    p.add_(torch.randn_like(p))
        clean = model.predict_sessions([_with_startup(s, 0.0) for s in base])
        media = np.array([s.media_duration for s in base])
        for w in waits:
            waited = model.predict_sessions([_with_startup(s, w) for s in base])
            assert np.all(waited - 1 <= (clean - 1) * media / (media + w / 3) + 1e-6), w
            if trial == 0 and w == 8.0:
                trained = (clean[-2:], waited[-2:])
    # the trained weights on steady VMAF-90 sessions: an 8-s wait costs at least 4 % (60 s) / 21 % (10 s) of
    # the score above the floor, and so more in the shorter session
    (c60, c10), (w60, w10) = trained
    assert c60 - w60 >= (c60 - 1) * 0.04 - 1e-6 and c10 - w10 >= (c10 - 1) * 0.21 - 1e-6
    assert c10 - w10 > c60 - w60


def test_bitrate_never_lowers_quality_mapping():
    m = QualityMapping(bias=5.0, w_bpp=0.45, w_res=0.9, w_fps=0.0, w_h=1.0)
    br = np.linspace(100, 20000, 200)
    for h, codec in ((360, "h264"), (1080, "hevc"), (2160, "vp9"), (720, "av1")):
        q = m(br, np.full(200, np.nan), np.full(200, h), np.full(200, 30.0), [codec] * 200, 2160)
        assert np.all(np.diff(q) >= 0) and np.all((q >= 0) & (q <= 100))


def test_vbr_jitter_is_not_a_switch(model):
    steady = session("steady", [2] * 10)
    jitter = Session.from_dict({**steady.to_dict(), "segments": [
        {**seg, "bitrate_kbps": seg["bitrate_kbps"] * f} for seg, f in
        zip(steady.to_dict()["segments"], [1.0, 1.4, 0.7, 1.3, 0.75, 1.35, 0.8, 1.25, 0.7, 1.3])]})
    b = make_batch([steady, jitter], model.mapping_)
    assert float(b.fixed[:, 5].abs().sum()) == 0.0  # switch rate feature
    switched = session("sw", [2] * 5 + [1] * 5)
    assert float(make_batch([switched], model.mapping_).fixed[0, 5]) > 0


def test_repeating_a_steady_session_changes_nothing(model):
    short = session("short", [3] * 3, [])
    long = session("long", [3] * 150, [])
    a, b = model.predict_sessions([short, long])
    assert abs(a - b) < 1e-5
    # with a startup delay, only its recency differs: it fades as the session goes on, never grows
    a, b = model.predict_sessions([session("short", [3] * 3, [(0, 1.0)]), session("long", [3] * 150, [(0, 1.0)])])
    assert a <= b + 1e-6


def test_bounded_for_extreme_sessions(model):
    huge = Session.from_arrays("many", np.arange(100_000, dtype=float), np.ones(100_000),
                               bitrate_kbps=np.full(100_000, 3000.0), height=720, fps=30)
    one = Session.from_arrays("one", [0.0], [200_000.0], bitrate_kbps=[1e6], height=[2160])
    stalls = session("stalls", [1] * 150, [(0, 30)] + [(4.0 * i + 1, 50.0) for i in range(1, 60)])
    tiny = Session.from_arrays("tiny", [0.0], [0.1], quality=[50.0], stall_start=[0.05], stall_duration=[3e5])
    sessions = [huge, one, stalls, tiny]
    p = model.predict_sessions(sessions)
    assert np.all(np.isfinite(p)) and np.all((p >= 1) & (p <= 5))
    for c in model.predict_curves(sessions):
        assert 0 < len(c) <= 4096 and np.all(np.isfinite(c)) and np.all((c >= 1) & (c <= 5))


def test_curve_follows_the_wall_clock_and_dips_during_a_stall(model):
    s = session("dip", [3] * 15, [(0, 1.0), (30.0, 6.0)])
    curve = model.predict_curves([s])[0]
    assert len(curve) == int(np.ceil(s.wall_duration)) == len(wall_points(s, True))
    stall_wall = 1.0 + 30.0  # the stall starts at wall second 31
    before, during, after = curve[int(stall_wall) - 1], curve[int(stall_wall) + 1:int(stall_wall) + 6], curve[-1]
    assert during.max() < before and during[-1] == during.min()
    assert after > during.min()
    assert model.predict_sessions([s])[0] == pytest.approx(curve[-1])


def test_one_pass_gives_what_the_separate_calls_give(model):
    """predict_scores_curves (the predictor's one pass) = predict_sessions, predict_curves, transform_sessions;
    the session score is the curve's last value, also for a session that ends within 1e-9 s past a second."""
    rng = np.random.default_rng(5)
    sessions = random_sessions(12, rng) + random_sessions(6, rng, with_quality=True)
    sessions.append(Session.from_arrays("edge", [0.0], [10.0 + 5e-10], quality=[60.0], stall_start=[4.0],
                                        stall_duration=[2.0]))
    scores, curves, reps = model.predict_scores_curves(sessions, curves=True, representation=True)
    np.testing.assert_allclose(scores, model.predict_sessions(sessions), rtol=0, atol=1e-6)
    for c, c2, sc in zip(curves, model.predict_curves(sessions), scores):
        np.testing.assert_allclose(c, c2, rtol=0, atol=1e-6)
        assert c[-1] == sc
    np.testing.assert_allclose(reps, model.transform_sessions(sessions), rtol=0, atol=1e-6)
    assert reps.shape == (len(sessions), model.n_members * model.representation_width)
    assert wall_points(sessions[-1], True)[-1] == wall_points(sessions[-1], False)[0]
    empty = model.predict_scores_curves([], curves=True, representation=True)
    assert empty[0].shape == (0,) and empty[1] == [] and empty[2].shape[0] == 0


def test_batch_mapping_is_the_per_session_mapping(model):
    """make_batch maps every session without a metric in one call: each on its own display and codecs."""
    from deepqoe.sessions.qoe_model import has_metric, mapped_segments, quality_steps, quality_track, sampled_steps

    rng = np.random.default_rng(6)
    sessions = random_sessions(8, rng)
    sessions = [Session.from_dict({**s.to_dict(), "context": {"display_height": d},
                                   "segments": [{**g, "codec": c} for g in s.to_dict()["segments"]]})
                for s, d, c in zip(sessions, [480, 1080, 2160, 720] * 2, ["h264", "hevc", None, "vp9"] * 2)]
    together = mapped_segments(sessions, model.mapping_)
    for s, q in zip(sessions, together):
        alone = model.mapping_(s.bitrate_kbps, s.width, s.height, s.fps, s.codec, s.context["display_height"])
        np.testing.assert_array_equal(q, alone)
        assert not has_metric(sampled_steps(s))
        np.testing.assert_array_equal(quality_track(sampled_steps(s), q)[0], quality_steps(s, model.mapping_)[0])
    assert len({round(float(q.mean()), 6) for q in together}) > 1


def test_save_load_round_trip_and_tampered_weights(model, tmp_path):
    from safetensors.torch import load_file, save_file

    from deepqoe.persistence import load_model

    rng = np.random.default_rng(5)
    sessions = random_sessions(10, rng)
    d = model.save(tmp_path / "m", extra={"name": "test"})
    loaded = load_model(d)
    np.testing.assert_allclose(loaded.predict_sessions(sessions), model.predict_sessions(sessions), atol=1e-6)
    state = load_file(str(d / "model.safetensors"))
    k = next(iter(state))
    state[k] = state[k] * float("nan")
    save_file(state, str(d / "model.safetensors"))
    with pytest.raises(DeepQoEError, match="finite"):
        load_model(d)
    meta = json.loads((d / "model.json").read_text())
    meta["params"]["n_members"] = 10**9
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DeepQoEError, match="model.json"):
        load_model(d)


def _steady(sid, quality, stalls=((0.0, 1.0),), n=15):
    """A steady 60-s session of one quality (VMAF-like) with stalls [(media start, duration)]."""
    return session(sid, [2] * n, list(stalls), quality=[quality] * n)


def test_impairment_penalties_are_zero_without_impairments(model):
    """The default (hybrid) fusion: each impairment's penalties are exactly 0 without it, > 0 with it; the
    stalls have the share penalty only (stall_penalty="share"), startup and switches both."""
    assert model.fusion == "hybrid" and model.stall_penalty == "share" and model.stall_dip
    assert model.representation_width == model.hidden + 6
    w, h = model.representation_width, model.hidden
    rep = model.transform_sessions([session("none", [2] * 15, [], quality=[90.0] * 15),
                                    _steady("st", 90.0, [(0.0, 1.0), (30.0, 8.0)]),
                                    _steady("late", 90.0, [(58.0, 4.0)])])
    for k in range(model.n_members):
        assert np.all(rep[0, k * w + h:(k + 1) * w] == 0)
        assert rep[1, k * w + h] > 0                       # the stall part's share penalty
        # the momentary dip (last column): there after a recent stall, fading as the session plays on
        assert rep[2, (k + 1) * w - 1] > rep[1, (k + 1) * w - 1] >= 0


SMALL_MAPPING = QualityMapping(bias=5.0, w_bpp=0.45, w_res=0.9, w_fps=0.0, w_h=1.0)


def _small_model(n: int, seed: int, **params) -> tuple[SessionQoEModel, list]:
    """A session model fitted briefly on ``n`` random sessions with a quality track (and those sessions)."""
    sessions = random_sessions(n, np.random.default_rng(seed), with_quality=True)
    data = TrainingData(sessions, synthetic_mos(sessions, SMALL_MAPPING), np.array(["a"] * n))
    return SessionQoEModel(**params).fit(data, SMALL_MAPPING), sessions


def test_multiplicative_fusion_takes_a_share_above_the_floor():
    """An impairment removes the same share of the score above 1 at every quality, so a stall costs more in
    a good session than in a poor one (the logit form's sigmoid shrinks it near the top instead)."""
    m, _ = _small_model(40, 6, epochs=20, fusion="multiplicative", stall_dip=False)  # the share alone
    mapping = SMALL_MAPPING
    assert m.representation_width == m.hidden + 3
    clean = [_steady("hi", 90.0), _steady("lo", 40.0)]
    stalled = [_steady("hi_s", 90.0, [(0.0, 1.0), (30.0, 8.0)]), _steady("lo_s", 40.0, [(0.0, 1.0), (30.0, 8.0)])]
    net = m.net_[0]
    with torch.no_grad():
        s_clean = net(make_batch(clean, mapping)).numpy()
        s_stall = net(make_batch(stalled, mapping)).numpy()
    ratio = (s_stall - 1) / (s_clean - 1)
    assert ratio[0] == pytest.approx(ratio[1], rel=1e-4) and ratio[0] < 1
    assert s_clean[0] - s_stall[0] > s_clean[1] - s_stall[1] > 0


def _stall_costs(m, qualities, stalls) -> np.ndarray:
    """Per member network: what the same stalls cost steady 30-s sessions at each quality (rows: quality)."""
    clean = [_steady(f"c{q}", q, [], n=15) for q in qualities]
    hit = [_steady(f"s{q}", q, stalls, n=15) for q in qualities]
    with torch.no_grad():
        return np.stack([(net(make_batch(clean, SMALL_MAPPING)) - net(make_batch(hit, SMALL_MAPPING))).numpy()
                         for net in m.net_], 1)


def test_a_stall_costs_more_in_a_better_session_for_any_weights():
    """The hybrid fusion prices stalls as a share of the score above the floor only (stall_penalty="share"):
    the same stalls cost at least as much at every higher quality, for trained weights and for random ones
    (the session's evaluation points are the same, only the quality differs). With the stalls inside the
    sigmoid too ("both", the form before) random weights break it: the sigmoid flattens near the top."""
    qualities = np.linspace(5, 100, 12)
    patterns = ([(14.0, 2.0)], [(0.0, 1.0), (6.0, 4.0), (20.0, 8.0)], [(28.0, 0.5)])
    broken = 0
    for penalty in ("share", "both"):
        m, _ = _small_model(30, 9, epochs=10, n_members=2, stall_penalty=penalty)
        assert m.stall_penalty == penalty
        for trial in range(4):
            if trial:
                with torch.no_grad():
                    for p in m.net_.parameters():
                        p.add_(2 * torch.randn_like(p))
            for stalls in patterns:
                cost = _stall_costs(m, qualities, stalls)
                assert np.all(cost > 0)
                rising = np.all(np.diff(cost, axis=0) >= -1e-6)
                if penalty == "share":
                    assert rising, (trial, stalls, cost)
                else:
                    broken += not rising
    assert broken > 0  # the check can fail: the old form does not keep the order


def test_stall_dip_is_deep_at_any_quality_and_bounded_for_any_weights():
    """The momentary dip D takes at most D off the score and never passes the floor: B exp(-D / B). So the
    curve's drop during a stall stays deep in a poor session (a share of the score above the floor alone
    shrinks there), for trained and random weights; without stalls the dip is exactly 0."""
    m, _ = _small_model(30, 12, epochs=10, n_members=2)
    plain, _ = _small_model(30, 12, epochs=10, n_members=2, stall_dip=False)
    assert m.stall_dip and not plain.stall_dip and plain.representation_width == m.representation_width - 1
    stall = [(0.0, 1.0), (14.0, 6.0)]
    for trial in range(4):
        if trial:
            with torch.no_grad():
                for p in m.net_.parameters():
                    p.add_(torch.randn_like(p))
        for net in m.net_:
            with torch.no_grad():
                dip = F_softplus(net.dip_weight).item()
            for q in (10.0, 50.0, 95.0):
                s = _steady(f"s{q}", q, stall, n=15)
                b = make_batch([s], SMALL_MAPPING, True)
                with torch.no_grad():
                    parts = net.parts(b)
                    rep = net.representation(parts)
                    with_dip = net.score_from_representation(rep, b).numpy()
                    rep0 = rep.clone()
                    rep0[:, -1] = 0
                    no_dip = net.score_from_representation(rep0, b).numpy()
                d = rep[:, -1].numpy()
                assert np.all(d >= 0) and np.all(with_dip >= 1) and np.all(with_dip <= no_dip + 1e-7)
                assert np.all(no_dip - with_dip <= d + 1e-6)          # at most D off the score
                assert np.all(d[np.asarray(b.t_wall) < 15.0] == 0)   # only the startup before the stall
                assert np.all(d[np.asarray(b.t_wall) > 16.5] > 0) and dip > 0
    clean = make_batch([_steady("c", 50.0, [], n=15)], SMALL_MAPPING, True)
    with torch.no_grad():
        assert float(m.net_[0].representation(m.net_[0].parts(clean))[:, -1].abs().max()) == 0.0


def test_files_without_a_stall_dip_load_without_one(tmp_path):
    """Files written before ``stall_dip`` have no dip: they load as ``stall_dip=False``; a bad value is a
    clear error."""
    m, sessions = _small_model(20, 5, epochs=5, stall_dip=False)
    loaded = _saved_without(m, "stall_dip", tmp_path, bad="sometimes")
    assert loaded.stall_dip is False and loaded.representation_width == loaded.hidden + 5
    np.testing.assert_array_equal(loaded.predict_sessions(sessions), m.predict_sessions(sessions))


def test_hybrid_files_without_a_stall_penalty_load_with_both(tmp_path):
    """Hybrid files written before ``stall_penalty`` priced stalls inside the sigmoid too: they load as
    "both", bit for bit; a bad value is a clear error."""
    m, sessions = _small_model(20, 4, epochs=5, stall_penalty="both", stall_dip=False)  # as files were then
    loaded = _saved_without(m, "stall_penalty", tmp_path, bad="sigmoid")
    assert loaded.stall_penalty == "both" and loaded.representation_width == loaded.hidden + 6
    np.testing.assert_array_equal(loaded.predict_sessions(sessions), m.predict_sessions(sessions))


def _saved_without(m, param: str, tmp_path, bad: str):
    """``m`` saved, its ``param`` deleted from model.json (a file written before it), loaded back; and the
    same file with ``param`` set to ``bad`` must be a clear error naming it."""
    from deepqoe.persistence import load_model

    d = m.save(tmp_path / "old", extra={"name": "old"})
    meta = json.loads((d / "model.json").read_text())
    del meta["params"][param]
    (d / "model.json").write_text(json.dumps(meta))
    loaded = load_model(d)
    meta["params"][param] = bad
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DeepQoEError, match=param):
        load_model(d)
    return loaded


def test_logit_fusion_trains_and_is_monotone():
    m, sessions = _small_model(40, 3, epochs=20, fusion="logit")
    assert m.transform_sessions(sessions[:3]).shape == (3, m.hidden)
    a, b = m.predict_sessions([_steady("hi", 90.0), _steady("hi_s", 90.0, [(0.0, 1.0), (30.0, 8.0)])])
    assert b <= a
    with pytest.raises(ValueError, match="fusion"):
        _small_model(5, 3, epochs=1, fusion="additive")


def test_model_files_without_a_fusion_load_as_the_logit_form(tmp_path):
    """Files written before the hybrid and multiplicative fusions name none in their params: they are the
    logit form."""
    m, sessions = _small_model(20, 4, epochs=5, fusion="logit")
    loaded = _saved_without(m, "fusion", tmp_path, bad="nonsense")
    assert loaded.fusion == "logit"
    np.testing.assert_allclose(loaded.predict_sessions(sessions), m.predict_sessions(sessions), atol=1e-6)


def test_prediction_averages_the_calibrations_of_session_score_datasets(tmp_path):
    """A dataset with only per-second ratings gets its own calibration in training, but prediction averages
    those of the datasets with session scores; files without the list average every calibration."""
    from deepqoe.persistence import load_model

    rng = np.random.default_rng(7)
    sessions = random_sessions(30, rng, with_quality=True)
    y = synthetic_mos(sessions, SMALL_MAPPING)
    curve_sessions = random_sessions(6, rng, with_quality=True, prefix="c")
    curves = [np.full(int(np.ceil(s.wall_duration)), 4.5) for s in curve_sessions]
    data = TrainingData(sessions + curve_sessions, np.r_[y, np.full(6, np.nan)],
                        np.array(["lab"] * 30 + ["slider"] * 6), [None] * 30 + curves)
    m = SessionQoEModel(epochs=30, n_members=1).fit(data, SMALL_MAPPING)
    assert m.calibrations_ == ["lab", "slider"] and m.score_calibrations_ == ["lab"]
    np.testing.assert_allclose(m.predict_sessions(sessions[:5]), m.predict_sessions(sessions[:5], calibration="lab"))
    d = m.save(tmp_path / "m", extra={"name": "m"})
    assert json.loads((d / "model.json").read_text())["score_calibrations"] == ["lab"]
    np.testing.assert_allclose(load_model(d).predict_sessions(sessions[:5]), m.predict_sessions(sessions[:5]),
                               atol=1e-6)
    meta = json.loads((d / "model.json").read_text())
    del meta["score_calibrations"]
    (d / "model.json").write_text(json.dumps(meta))
    old = load_model(d)
    assert old.score_calibrations_ == ["lab", "slider"]
    net = m.net_[0]  # the two averages differ unless training left the two calibrations equal
    same = np.allclose(old.predict_sessions(sessions[:5]), m.predict_sessions(sessions[:5]), atol=1e-6)
    equal_cal = torch.allclose(net.cal_scale[0], net.cal_scale[1]) and torch.allclose(net.cal_shift[0], net.cal_shift[1])
    assert not equal_cal and not same
    meta["score_calibrations"] = ["nowhere"]
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DeepQoEError, match="score_calibrations"):
        load_model(d)


def test_the_score_moves_continuously_with_a_segment_boundary():
    """A segment counts in each media second by the share of the second it covers: a boundary at 2.5 s and
    at 2.5 + 1e-10 s give the same score (each second was taken whole from its midpoint's segment, so float
    noise in logged times moved a score by 0.04), and moving the boundary by 0.01 s moves it a little.
    Whole-second boundaries (every training session here) give exactly the segments' own qualities."""
    from deepqoe.persistence import load_model
    from deepqoe.sessions.qoe_model import quality_steps

    m = load_model("streaming")

    def two(b, quality=None):
        kw = {"quality": quality} if quality else {"bitrate_kbps": [1000, 6000], "height": [480, 1080],
                                                 "width": [854, 1920], "fps": [30, 30]}
        return Session.from_arrays("x", [0, b], [b, 10 - b], **kw)

    for kw in ({}, {"quality": [40.0, 90.0]}):  # the mapping's quality, and a metric
        s = m.predict_sessions([two(b, **kw) for b in (2.5 - 1e-10, 2.5, 2.5 + 1e-10, 2.51, 3.5 + 1e-10)])
        assert np.ptp(s[:3]) < 1e-6, s
        assert 0 < abs(s[3] - s[2]) < 0.01 and abs(s[3] - s[4]) > 0.01, s
    q, dt, _ = quality_steps(two(2.25, [40.0, 90.0]), m.mapping_)
    np.testing.assert_allclose(q[:4] * 100, [40, 40, 77.5, 90])  # the third second: 1/4 at 40, 3/4 at 90
    q, _, _ = quality_steps(two(3.0, [40.0, 90.0]), m.mapping_)
    np.testing.assert_allclose(q * 100, [40] * 3 + [90] * 7)


def test_the_score_moves_continuously_with_a_stall_length():
    """A stall counts as an event by its length (``STALL_EVENT_TAU``): a 1e-9-s stall (rounded timestamps)
    costs nothing (it used to cost a whole stall event, 0.08 of a 4.7 session), the cost grows with the
    length from zero, and from 15 ms (the shortest stall in the training logs) a stall is a whole event."""
    from deepqoe.persistence import load_model
    from deepqoe.sessions.qoe_model import STALL_EVENT_TAU, make_batch

    m = load_model("streaming")

    def sess(d):
        kw = {"stall_start": [30.0], "stall_duration": [d]} if d is not None else {}
        return Session.from_arrays("x", np.arange(30) * 2.0, np.full(30, 2.0), quality=np.full(30, 90.0), **kw)

    lengths = [None, 1e-9, 1e-6, 1e-4, 1e-3, 5e-3, 0.015, 0.1, 1.0]
    s = m.predict_sessions([sess(d) for d in lengths])
    assert abs(s[1] - s[0]) < 1e-4 and abs(s[2] - s[0]) < 1e-3, s
    assert np.all(np.diff(s) <= 1e-7), s              # longer never better
    assert s[0] - s[-1] > 0.1, s                      # a 1-s stall still costs
    events = lambda d: float(np.expm1(float(make_batch([sess(d)], m.mapping_).fixed[-1, 1])))  # noqa: E731 (60 s)
    assert events(0.015) > 0.999 and events(1e-6) < 1e-3, (events(0.015), events(1e-6))
    # flat at zero length (squared onset): a 20-microsecond stall counts ~1e-4 of an event, not 0.01, so that
    # even a barely trained model gives it no visible cost (a 20-epoch model broke stall_vanishing)
    assert events(2e-5) < 1e-3 and events(2e-3) > 0.5, (events(2e-5), events(2e-3))
    assert STALL_EVENT_TAU <= 0.005
