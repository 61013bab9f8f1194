"""Rating-distribution heads (deepqoe.distribution): recovery of a known spread, the SOS hypothesis, strict
parsing of individual scores, persistence, the predictor's fields, and Waterloo SQoE-IV's real ratings."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import real_data
from deepqoe.distribution import (RatingDistribution, fit_sos_hypothesis, load_heads, observed, parse_ratings,
                                  save_heads)
from deepqoe.errors import DeepQoEError


def _beta_ratings(rng, mos_common, phi, n=30, scale=(0.0, 100.0), step=1.0, discrete=False):
    lo, hi = scale
    width = hi - lo + step
    out = []
    for mu, p in zip(mos_common, phi):
        m = ((lo + (mu - 1) * (hi - lo) / 4) - lo + step / 2) / width
        x = rng.beta(m * p, (1 - m) * p, n) * width + lo - step / 2
        out.append(np.clip(np.rint(x / step) * step, lo, hi) if discrete else np.clip(x, lo, hi))
    return out


def test_head_recovers_known_dispersion():
    rng = np.random.default_rng(0)
    n = 600
    mos = rng.uniform(1.5, 4.5, n)
    f = rng.normal(size=(n, 2))
    phi = np.exp(2.5 + 0.6 * f[:, 0])          # the spread depends on the first feature only
    ratings = _beta_ratings(rng, mos, phi)
    head = RatingDistribution("0-100", l2=1e-4).fit(mos, ratings, f)
    _, phi_hat = head.params(mos, f)
    assert np.corrcoef(np.log(phi_hat), np.log(phi))[0, 1] > 0.95
    assert abs(np.median(np.log(phi_hat) - np.log(phi))) < 0.15
    # a constant spread is recovered too, and beats the wrong constant on held-out likelihood
    flat = _beta_ratings(rng, mos, np.full(n, 12.0))
    h2 = RatingDistribution("0-100", use_features=False).fit(mos[:400], flat[:400])
    assert abs(np.log(h2.params(mos, None)[1]).mean() - np.log(12.0)) < 0.15
    wrong = RatingDistribution("0-100", use_features=False).fit(mos[:400], _beta_ratings(rng, mos[:400],
                                                                                        np.full(400, 60.0)))
    assert h2.log_likelihood(mos[400:], flat[400:]) > wrong.log_likelihood(mos[400:], flat[400:])


def test_discrete_acr_head_and_outputs():
    rng = np.random.default_rng(1)
    mos = rng.uniform(1.2, 4.8, 300)
    ratings = _beta_ratings(rng, mos, np.full(300, 8.0), n=25, scale=(1.0, 5.0), discrete=True)
    head = RatingDistribution("1-5").fit(mos, ratings)
    assert head.scale_.discrete
    p = head.predict(mos)
    obs = observed(ratings, "1-5")
    assert np.all((p["p_gob"] >= 0) & (p["p_gob"] <= 1) & (p["p_pow"] >= 0) & (p["p_pow"] <= 1))
    assert np.all(p["q10"] <= p["q50"]) and np.all(p["q50"] <= p["q90"])
    assert np.mean(np.abs(p["sos"] - obs["sos"])) < 0.15
    assert np.mean(np.abs(p["p_gob"] - obs["p_gob"])) < 0.1
    assert np.isclose(obs["p_gob"][0], np.mean(ratings[0] >= 4)) and np.isclose(obs["p_pow"][0],
                                                                                np.mean(ratings[0] <= 2))


def test_served_distribution_is_centred_on_the_score():
    """A head fitted on ratings whose mean sits 15 points below the predicted MOS keeps that offset for the
    evaluation (``predict``), but the served distribution (``centred``) has the score as its mean."""
    rng = np.random.default_rng(2)
    mos = rng.uniform(1.5, 4.5, 300)
    ratings = [r - 15.0 for r in _beta_ratings(rng, mos, np.full(300, 15.0))]
    head = RatingDistribution("0-100", use_features=False).fit(mos, [np.clip(r, 0, 100) for r in ratings])
    own = (mos - 1) * 25.0
    assert np.mean(head.predict(mos)["mos"] - own) < -10                       # the fitted line
    assert np.allclose(head.predict(mos, centred=True)["mos"], own, atol=0.3)  # the served score
    sos = head.predict(mos, centred=True)["sos"]   # the same precision around another mean
    assert np.all((sos > 0) & (sos < 50)) and abs(np.median(sos) - np.median(head.predict(mos)["sos"])) < 5


def test_sos_hypothesis_fit_on_constructed_example():
    mos = np.array([1.5, 2.0, 3.0, 4.0, 4.5])
    sos = np.sqrt(0.25 * (-mos ** 2 + 6 * mos - 5))
    assert fit_sos_hypothesis(mos, sos, "1-5") == pytest.approx(0.25)
    m100 = np.array([10.0, 40.0, 70.0, 95.0])
    assert fit_sos_hypothesis(m100, np.sqrt(0.1 * m100 * (100 - m100)), "0-100") == pytest.approx(0.1)
    head = RatingDistribution("0-100", kind="sos").fit(
        (np.array([1.4, 2.6, 3.8]) - 1) * 1, [np.array([5.0, 15, 20]), np.array([30.0, 50, 70]),
                                              np.array([60.0, 70, 80])])
    assert head.sos_a_ > 0 and head.mos_sd_ == 0.0


@pytest.mark.parametrize("text, needle", [("[95 8x3 87]", "not a number"), ("[]", "empty"), ("", "empty"),
                                          ("[95 101]", "outside the scale"), ("[95 83", "unbalanced"),
                                          (float("nan"), "expected a list"), ("[95 -3]", "outside")])
def test_malformed_individual_scores_are_one_line_errors(text, needle):
    with pytest.raises(DeepQoEError) as e:
        parse_ratings(text, "0-100", file="data.csv", column="individual_scores", row=7)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg
    assert "data.csv" in msg and "individual_scores" in msg and "7" in msg


def test_good_individual_scores_parse():
    assert parse_ratings("[95 83  87]", "0-100").tolist() == [95, 83, 87]
    assert parse_ratings("1, 5, 3", "1-5").tolist() == [1, 5, 3]


def test_waterloo_loader_names_bad_row(tmp_path):
    from deepqoe.datasets.waterloo_sqoe import load_waterloo_folder

    (tmp_path / "data.csv").write_text("streaming_log,mos,individual_scores\n0001.csv,50,[50 60]\n"
                                       "0002.csv,40,[40 4O]\n")
    with pytest.raises(DeepQoEError) as e:
        load_waterloo_folder(tmp_path)
    assert "row 2" in str(e.value) and "individual_scores" in str(e.value) and "'4O'" in str(e.value)


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    mos, f = rng.uniform(1.5, 4.5, 200), rng.normal(size=(200, 3))
    ratings = _beta_ratings(rng, mos, np.exp(2 + 0.3 * f[:, 1]))
    heads = {"a": RatingDistribution("0-100").fit(mos, ratings, f),
             "b": RatingDistribution("0-100", kind="sos").fit(mos, ratings)}
    save_heads(tmp_path, heads, default="a")
    loaded, default = load_heads(tmp_path)
    assert default == "a" and set(loaded) == {"a", "b"}
    for k in heads:
        p, q = heads[k].predict(mos, f), loaded[k].predict(mos, f)
        for key in p:
            np.testing.assert_allclose(p[key], q[key])
    assert not any(p.suffix == ".pkl" for p in tmp_path.iterdir())
    (tmp_path / "distribution.json").write_text('{"heads": {"a": {"kind": "model"}}}')
    with pytest.raises(DeepQoEError, match="malformed"):
        load_heads(tmp_path)


class _ToyModel:
    """A session model stand-in: fixed scores, a 3-d representation."""

    def predict_sessions(self, sessions):
        return np.linspace(1.2, 4.9, len(sessions))

    def predict_curves(self, sessions):
        return [np.full(4, 3.0) for _ in sessions]

    def transform_sessions(self, sessions):
        return np.arange(3 * len(sessions), dtype=float).reshape(len(sessions), 3) / 10


def test_predictor_rows_have_distribution_fields(tmp_path):
    from deepqoe.predictor import Predictor
    from deepqoe.sessions.session import Session

    rng = np.random.default_rng(3)
    mos, f = rng.uniform(1.5, 4.5, 200), rng.normal(size=(200, 3))
    head = RatingDistribution("0-100").fit(mos, _beta_ratings(rng, mos, np.full(200, 10.0)), f)
    save_heads(tmp_path, {"w": head})
    sessions = [Session.from_arrays(f"s{i}", np.arange(3) * 4.0, np.full(3, 4.0), bitrate_kbps=np.full(3, 2000.0),
                                    height=np.full(3, 720.0)) for i in range(6)]
    p = Predictor(_ToyModel(), tmp_path)
    for scale in (None, "0-100"):
        rows, failures = p.predict_sessions(sessions, scale=scale)
        assert not failures and len(rows) == 6
        for r in rows:
            d = r["distribution"]
            assert 0 <= d["p_gob"] <= 1 and 0 <= d["p_pow"] <= 1 and d["sos"] >= 0
            q = d["quantiles"]
            assert q["0.1"] <= q["0.5"] <= q["0.9"]
        assert rows[-1]["distribution"]["p_gob"] > rows[0]["distribution"]["p_gob"]
    rows1, _ = p.predict_sessions(sessions)
    rows100, _ = p.predict_sessions(sessions, scale="0-100")
    assert rows100[2]["distribution"]["sos"] == pytest.approx(rows1[2]["distribution"]["sos"] * 25, rel=1e-4)
    assert "distribution" not in Predictor(_ToyModel(), tmp_path / "none").predict_sessions(sessions)[0][0]


def test_waterloo_real_ratings():
    real_data("waterloo-sqoe-iv", "data.csv")
    from deepqoe.datasets.scored import load_session_set

    S = load_session_set("waterloo-sqoe-iv")
    assert S.rating_scale == "0-100" and len(S.ratings) == len(S.y) == 1350
    assert all(29 <= len(r) <= 32 for r in S.ratings)
    assert len(S.subset([3, 5]).ratings) == 2
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(S.y))
    tr, te = idx[:900], idx[900:]
    pick = lambda ix: [S.ratings[i] for i in ix]  # noqa: E731
    ours = RatingDistribution("0-100", use_features=False).fit(S.y[tr], pick(tr))
    const = RatingDistribution("0-100", kind="constant").fit(S.y[tr], pick(tr))
    assert ours.log_likelihood(S.y[te], pick(te)) > const.log_likelihood(S.y[te], pick(te))
    obs = observed(pick(te), "0-100")
    assert np.mean(np.abs(ours.predict(S.y[te])["sos"] - obs["sos"])) < np.mean(
        np.abs(const.predict(S.y[te])["sos"] - obs["sos"]))


def test_session_table_has_distribution_columns(tmp_path):
    from deepqoe.predictor import Predictor
    from deepqoe.sessions.predict import session_table
    from deepqoe.sessions.session import Session

    rng = np.random.default_rng(4)
    mos, f = rng.uniform(1.5, 4.5, 100), rng.normal(size=(100, 3))
    save_heads(tmp_path, {"w": RatingDistribution("0-100").fit(mos, _beta_ratings(rng, mos, np.full(100, 9.0)), f)})
    sessions = [Session.from_arrays(f"s{i}", np.arange(2) * 4.0, np.full(2, 4.0), bitrate_kbps=np.full(2, 900.0))
                for i in range(3)]
    rows, _ = Predictor(_ToyModel(), tmp_path).predict_sessions(sessions)
    t = session_table(rows)
    assert {"sos", "p_gob", "p_pow"} <= set(t.columns) and t["p_pow"].between(0, 1).all()


def test_sessions_config_fits_heads(tmp_path):
    real_data("waterloo-sqoe-iv", "data.csv")
    from deepqoe.config import SessionsExperimentConfig
    from deepqoe.predictor import Predictor
    from deepqoe.workflow import train_sessions_config

    cfg = SessionsExperimentConfig.model_validate({
        "sessions": {"name": "toy", "datasets": ["waterloo-sqoe-iv"]}, "model": {"n_members": 1},
        "training": {"epochs": 5}, "evaluation": {"protocol": "group-kfold", "n_splits": 2},
        "distribution": {"datasets": ["waterloo-sqoe-iv"]}})
    metrics = train_sessions_config(cfg, tmp_path / "m", progress=False)
    assert metrics["distribution"]["heads"]["waterloo-sqoe-iv"]["mos"] == "out-of-fold predictions"
    p = Predictor.load(tmp_path / "m")
    from deepqoe.datasets.scored import load_session_set

    rows, failures = p.predict_sessions(load_session_set("waterloo-sqoe-iv").sessions[:4], scale="0-100")
    assert not failures and all(0 <= r["distribution"]["p_pow"] <= 1 for r in rows)
    bad = {**cfg.model_dump(), "distribution": {"datasets": ["live-nflx"]}}
    with pytest.raises(DeepQoEError, match="not one of"):
        train_sessions_config(SessionsExperimentConfig.model_validate(bad), tmp_path / "m2", progress=False)


def test_p1203_ratings_match_mos():
    real_data("p1203-open", "subjective_scores", "ratings.csv")
    from deepqoe.datasets.scored import load_session_set

    S = load_session_set("p1203-open")
    assert S.rating_scale == "1-5" and len(S.ratings) == len(S.y)
    np.testing.assert_allclose([r.mean() for r in S.ratings], S.y, atol=1e-9)  # ACR 1-5 is the common scale
    assert set(np.concatenate(S.ratings).tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_reproduce_section_registered():
    from deepqoe.experiments import SECTIONS, section_runner
    from deepqoe.experiments.common import load_recipe

    assert "rating_distribution" in SECTIONS and callable(section_runner("rating_distribution"))
    rec = load_recipe("rating_distribution")
    assert set(rec["datasets"]) == {"waterloo-sqoe-iv", "p1203-open"}


def test_rating_head_choice_on_the_command_line(tmp_path, capsys):
    """``--rating-head`` serves another stored head (the shipped model's P.1203 ACR head: category
    quantiles); an unknown name or a model without heads is one line, exit 1."""
    import json

    from deepqoe.cli import main

    segs = [{"start": 4 * i, "duration": 4, "bitrate_kbps": 3000, "height": 1080, "width": 1920, "fps": 30,
             "codec": "h264"} for i in range(10)]
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"id": "s", "segments": segs, "stalls": [{"start": 12, "duration": 2}]}))
    capsys.readouterr()
    assert main(["predict", "streaming", str(f), "--rating-head", "p1203-open", "--json", "-q"]) == 0
    acr = json.loads(capsys.readouterr().out)[0]
    assert all(float(v).is_integer() and 1 <= v <= 5 for v in acr["distribution"]["quantiles"].values())
    assert main(["predict", "streaming", str(f), "--json", "-q"]) == 0
    default = json.loads(capsys.readouterr().out)[0]
    assert default["score"] == acr["score"] and default["distribution"] != acr["distribution"]
    assert main(["predict", "streaming", str(f), "--rating-head", "nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown rating head 'nope'" in err and "p1203-open" in err and len(err.strip().splitlines()) == 1
    # a classifier never has a rating-distribution head: an option for another kind of model, a usage error
    assert main(["predict", "upec-qoe-lab", str(f), "--rating-head", "x"]) == 2
    assert "--rating-head is for session models" in capsys.readouterr().err


def test_calibration_serves_its_own_rating_head(tmp_path):
    """``calibration="p1203-open"`` serves P.1203's own (ACR) head unless a head was chosen; rows and tables say
    which head; the service does the same as Python."""
    import numpy as np

    from deepqoe.predictor import load_predictor
    from deepqoe.sessions import Session
    from deepqoe.sessions.predict import session_table

    s = Session.from_arrays("s", np.arange(10) * 4.0, np.full(10, 4.0), quality=np.full(10, 70.0),
                            stall_start=[12.0], stall_duration=[2.0])
    p = load_predictor("streaming")
    default = p.predict_sessions([s], curve=False)[0][0]["distribution"]
    p1203 = p.predict_sessions([s], curve=False, calibration="p1203-open")[0][0]["distribution"]
    waterloo = p.predict_sessions([s], curve=False, calibration="waterloo-sqoe-iv")[0][0]["distribution"]
    nflx = p.predict_sessions([s], curve=False, calibration="live-nflx")[0][0]["distribution"]
    assert default["head"] == "waterloo-sqoe-iv" and waterloo["head"] == "waterloo-sqoe-iv"
    assert p1203["head"] == "p1203-open" and nflx["head"] == "waterloo-sqoe-iv"  # LIVE-NFLX has no head
    assert all(float(v).is_integer() for v in p1203["quantiles"].values())  # ACR categories
    p.select_rating_head("waterloo-sqoe-iv")  # an explicit choice wins over the calibration's
    chosen = p.predict_sessions([s], curve=False, calibration="p1203-open")[0][0]["distribution"]
    assert chosen["head"] == "waterloo-sqoe-iv"
    q = load_predictor("streaming")
    rows, _ = q.predict_sessions([s], curve=False, calibration="p1203-open")
    assert list(session_table(rows)["rating_head"]) == ["p1203-open"]
    from deepqoe.serve import ModelService

    svc = ModelService("streaming")
    out = svc.predict_obj({"sessions": [s.to_dict()], "calibration": "p1203-open"})
    assert out["predictions"][0]["distribution"] == rows[0]["distribution"]


def test_service_serves_the_rating_head_asked_for():
    """``"rating_head"`` in the body (or ``?rating_head=``) picks the head, as ``--rating-head`` does; an unknown
    one is a 422 on ``rating_head``; the schema lists the heads."""
    import numpy as np

    from deepqoe.predictor import load_predictor
    from deepqoe.serve import ModelService, RequestError
    from deepqoe.sessions import Session

    s = Session.from_arrays("s", np.arange(10) * 4.0, np.full(10, 4.0), quality=np.full(10, 70.0))
    svc = ModelService("streaming")
    body = svc.predict_obj({"sessions": [s.to_dict()], "rating_head": "p1203-open"})["predictions"][0]
    query = svc.predict_obj({"sessions": [s.to_dict()]}, rating_head="p1203-open")["predictions"][0]
    p = load_predictor("streaming")
    p.select_rating_head("p1203-open")
    want = p.predict_sessions([s], curve=False)[0][0]["distribution"]
    assert body["distribution"] == query["distribution"] == want and want["head"] == "p1203-open"
    # the body's choice wins over the calibration's own head
    both = svc.predict_obj({"sessions": [s.to_dict()], "calibration": "p1203-open",
                            "rating_head": "waterloo-sqoe-iv"})["predictions"][0]
    assert both["distribution"]["head"] == "waterloo-sqoe-iv" and both["calibration"] == "p1203-open"
    with pytest.raises(RequestError) as e:
        svc.predict_obj({"sessions": [s.to_dict()], "rating_head": "nope"})
    assert e.value.status == 422 and e.value.field == "rating_head" and "p1203-open" in e.value.message
    schema = svc.request_schema()["anyOf"][0]["properties"]
    assert schema["rating_head"]["enum"] == ["p1203-open", "waterloo-sqoe-iv"]


def test_the_terminal_table_shows_the_viewers_side(tmp_path, capsys):
    """``deepqoe predict streaming s.json`` (no --out, no --json): the table on stdout has SOS, %GoB and %PoW
    beside the score, as the JSON has them; a legend naming the head goes to stderr, hidden by -q."""
    import json

    from deepqoe.cli import main

    segs = [{"start": 4 * i, "duration": 4, "bitrate_kbps": 3000, "height": 1080, "width": 1920, "fps": 30}
            for i in range(10)]
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"id": "s", "segments": segs, "stalls": [{"start": 12, "duration": 2}]}))
    capsys.readouterr()
    assert main(["predict", "streaming", str(f), "--json", "-q"]) == 0
    d = json.loads(capsys.readouterr().out)[0]["distribution"]
    assert main(["predict", "streaming", str(f)]) == 0
    out, err = capsys.readouterr()
    head, row = out.splitlines()
    assert head.split()[-7:-4] == ["SOS", "%GoB", "%PoW"]
    cells = row.split()  # id, score, scale, interval low, "-", interval high, SOS, %GoB, %PoW, curve...
    assert [float(c) for c in cells[6:9]] == [round(d["sos"], 3), round(100 * d["p_gob"], 1),
                                                   round(100 * d["p_pow"], 1)]
    assert "waterloo-sqoe-iv" in err and "%PoW" in err
    assert main(["predict", "streaming", str(f), "-q"]) == 0
    assert capsys.readouterr().err == ""
