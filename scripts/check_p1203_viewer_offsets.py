"""A check by hand (docs/results.md, "Per-viewer QoE"): per-viewer offsets on P.1203 open, whose
ratings.csv names the subject of each rating. Population prediction: the session model's out-of-fold MOS
(content-disjoint 5-fold on P.1203 alone, P.1203's calibration). Each viewer (database:subject) is adapted
from k of their ratings by a shrunk mean offset, b = sum(r - pred) / (k + lam), lam = noise variance / bias
variance, estimated on the *other* viewers; scored on their remaining ratings. Also the ceiling: the true
MOS (mean of the other viewers' ratings), alone and plus each viewer's true bias (from all their other
ratings).

    DEEPQOE_DATA=../shared/datasets python scripts/check_p1203_viewer_offsets.py   # about 2 min
"""
import numpy as np
import pandas as pd

from deepqoe.datasets.files import data_root
from deepqoe.datasets.scored import load_session_set, quality_mapping
from deepqoe.evaluation.protocols import make_splits
from deepqoe.sessions.training import RECIPE, fit_streaming_model

S = load_session_set("p1203-open")
mapping = quality_mapping()
pred = np.full(len(S.y), np.nan)
for sp in make_splits("group-kfold", len(S.y), groups=S.groups, n_splits=5, seed=0):
    m = fit_streaming_model([S.subset(sp.train)], mapping=mapping, **{**RECIPE, "n_members": 1, "epochs": 200})
    pred[sp.test] = m.predict_sessions([S.sessions[i] for i in sp.test], calibration=S.name)
print("oof SROCC", pd.Series(pred).corr(pd.Series(S.y), method="spearman"))
r = pd.read_csv(data_root() / "p1203-open" / "subjective_scores" / "ratings.csv")
r["sid"] = r.pvs_id + "-" + r.context
idx = {s.id: i for i, s in enumerate(S.sessions)}
r = r[r.sid.isin(idx)].copy()
r["pred"] = pred[r.sid.map(idx).to_numpy()]   # the session model's common scale is 1-5 = ACR here
r["viewer"] = r.pvs_id.str.split("_").str[0] + ":" + r.subject
r["res"] = r.rating - r.pred
rng = np.random.default_rng(0)
order = {v: rng.permutation(np.flatnonzero(r.viewer.to_numpy() == v)) for v in r.viewer.unique()}
viewers = list(order)
res, y, p = r.res.to_numpy(), r.rating.to_numpy(), r.pred.to_numpy()
rows = []
for k in (0, 1, 3, 5, 10, 20):
    hits0 = hits = n = 0
    ae0 = ae = 0.0
    for v in viewers:
        ids = order[v]
        if len(ids) <= k:
            continue
        others = np.concatenate([order[u] for u in viewers if u != v])
        vb = pd.Series(res[others]).groupby(r.viewer.to_numpy()[others]).agg(["mean", "var", "count"])
        bias_var = max(vb["mean"].var() - (vb["var"] / vb["count"]).mean(), 1e-6)
        lam = vb["var"].mean() / bias_var
        b = res[ids[:k]].sum() / (k + lam) if k else 0.0
        test = ids[k:]
        c0, c1 = np.clip(np.rint(p[test]), 1, 5), np.clip(np.rint(p[test] + b), 1, 5)
        hits0, hits, n = hits0 + (c0 == y[test]).sum(), hits + (c1 == y[test]).sum(), n + len(test)
        ae0 += np.abs(p[test] - y[test]).sum()
        ae += np.abs(p[test] + b - y[test]).sum()
    rows.append((k, n, hits0 / n, hits / n, ae0 / n, ae / n, lam))
print("k, ratings scored, acc population, acc adapted, MAE population, MAE adapted, lambda (last viewer)")
for row in rows:
    print("%d %d %.3f %.3f %.3f %.3f %.2f" % row)

# the ceiling: the true MOS of each session (the other viewers' mean), alone and with each viewer's true bias
g = r.groupby("sid").rating
loo = (g.transform("sum") - r.rating) / (g.transform("count") - 1)
res_true = r.rating - loo
vs, vn = res_true.groupby(r.viewer).transform("sum"), res_true.groupby(r.viewer).transform("count")
for name, q in (("true MOS", loo), ("true MOS + true viewer bias", loo + (vs - res_true) / (vn - 1))):
    print(f"{name}: accuracy {(np.clip(np.rint(q), 1, 5) == r.rating).mean():.3f}, MAE {np.abs(q - r.rating).mean():.3f}")
