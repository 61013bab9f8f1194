#!/usr/bin/env python
"""Write ``src/deepqoe/datasets/catalog.json``: every file of every dataset with its URL, SHA-256 and size.

    python scripts/make_dataset_manifest.py /path/to/datasets [--out src/deepqoe/datasets/catalog.json]

It reads a local data folder holding files copied unchanged from upstream (``$DEEPQOE_DATA``) and, for each
dataset below, lists the files of its folder. The upstream side (repository, commit, path in the repository)
is written here by hand, from the stored index of public repositories: a commit where the file's version
was seen there. Where no commit could be established the file is pinned to ``HEAD`` (the default branch)
and the dataset's ``note`` says so; the SHA-256 still pins the content, so a changed upstream file is a
checksum error at fetch time, never silently different data. A file with no upstream copy (``url`` null)
is optional: ``fetch`` cannot get it and ``verify`` checks it only when present.

Nothing row-level goes into the manifest: names, sizes and hashes only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RAW = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"

# upstream commits seen in the index (find_files) for the files we copy
P1203_MODE0 = "e3cce38d7d5997b8b3dcb9164ef2612b42386e24"
VIDEVAL = {  # features/<file> -> commit; files with several upstream versions are pinned to HEAD
    "KONVID_1K_VIDEVAL_light720_3fps_feats.mat": "c84be1bd1460d748a6029d2a153842d9c19e9ed0",
    "KONVID_1K_VIDEVAL_light720_6fps_feats.mat": "c84be1bd1460d748a6029d2a153842d9c19e9ed0",
    "KONVID_1K_metadata.csv": "f0ccaa484b6c5c63ab8af49f6d4c1a36b9f10fd1",
    "LIVE_VQA_VIDEVAL_feats.mat": "0b72861ef9183338d34840695a4c8ef4cc358155",
    "LIVE_VQA_metadata.csv": "0b72861ef9183338d34840695a4c8ef4cc358155",
    "YOUTUBE_UGC_VIDEVAL_feats.mat": "f0ccaa484b6c5c63ab8af49f6d4c1a36b9f10fd1",
    "YOUTUBE_UGC_VIDEVAL_light720_3fps_feats.mat": "c84be1bd1460d748a6029d2a153842d9c19e9ed0",
    "YOUTUBE_UGC_VIDEVAL_light720_6fps_feats.mat": "0f704d05a4cfac57ec45534a55eac6dfff73a161",
    "YOUTUBE_UGC_metadata.csv": "f0ccaa484b6c5c63ab8af49f6d4c1a36b9f10fd1",
}
CLIPS = {  # local name -> (repo, commit, upstream path)
    "konvid1k_5115335471.mp4": ("vztu/VIDEVAL", "f0ccaa484b6c5c63ab8af49f6d4c1a36b9f10fd1", "videos/5115335471.mp4"),
    "konvid1k_10053703034.mp4": ("VQAssessment/FAST-VQA-and-FasterVQA", "c5f53c9455375ec8ebcd5393a47ebd5f5d71ef72",
                                 "demos/10053703034.mp4"),
    "lsvq_yfcc-batch3_1724.mp4": ("VQAssessment/DOVER", "85aeccea26e623580c2021261144e70035a7a5e0", "demo/1724.mp4"),
    "lsvq_yfcc-batch22_17734.mp4": ("VQAssessment/DOVER", "85aeccea26e623580c2021261144e70035a7a5e0",
                                    "demo/17734.mp4"),
    "vsfa_test_unlabeled.mp4": ("lidq92/VSFA", "00741d0e99af2da0cff5270154010db6d2783485", "test.mp4"),
}


def _p1203(rel: str):
    if rel.startswith("mode0_inputs/"):
        return P1203_MODE0, "mode0/" + rel.split("/", 1)[1]
    if rel == "O46.csv":
        return "579fd2efc484eeb7c5c29c8a1c70b13058d5282d", rel
    if rel == "README.md":
        return "ff6286f845d109d02651558988891f82ddee6eec", rel
    return "HEAD", rel


def _upec(rel: str):
    return {"QoEcontrolledLab.csv": ("7915a8013bf089aca7e679aea752d81146043e8b", "data/QoEcontrolledLab.csv"),
            "LICENSE.md": ("HEAD", "LICENSE.md"), "README.md": ("HEAD", "README.md")}[rel]


def _continuous(rel: str):
    sub, name = rel.split("/", 1)
    if sub == "live-nflx":
        return "fd40dc4ff6fcf7201332fee62e2fcebc75444712", f"LIVE_Netflix/LIVE_Netflix_matfiles/{name}"
    if name == "training_videos_set.mat":
        return "280f5650506e5e2bd7360963c3615c8c8b2cf83c", "LFOVIA_QoE/training_videos_set.mat"
    return "2459b34b9ebe287255fcb99a8da81b703383b48c", f"LFOVIA_QoE/QoE_matfiles/{name}"


def _videval(rel: str):
    if rel == "LICENSE":
        return "f627cfe9b8232c5ae12bf812dcb45a4f3cc4272e", rel
    if rel == "README.md":
        return "8a86166bb9a9c8fc5e5eac5db7a77771cf576947", rel
    return VIDEVAL.get(rel.split("/", 1)[1], "HEAD"), rel


def _waterloo(rel: str):
    up = "README.md" if rel == "README_source_repo.md" else f"WaterlooIV partial database/{rel}"
    return "HEAD", up


def _clips(rel: str):
    return CLIPS.get(rel)  # clips.csv: assembled locally, no upstream copy


DATASETS = [
    dict(name="upec-qoe-lab", folder="upec-qoe-lab", repo="PhDAmour/QoEcontrlledLaboratory",
         commit="7915a8013bf089aca7e679aea752d81146043e8b", licence="MIT-style licence", non_commercial=False,
         title="UPEC QoE controlled lab: 562 ratings (ACR 1-5) of 24 video conditions", where=_upec,
         note="the table is pinned; LICENSE.md and README.md have several upstream versions and are pinned to "
              "HEAD (commit not established)"),
    dict(name="live-nflx", folder="live-nflx", repo="christosbampis/VideoATLAS_release",
         commit="6227737e2bf393c4eb9f822a12cef04a94118e74",
         licence="UT Austin permissive licence (keep the notice, cite Bampis et al.)", non_commercial=False,
         title="LIVE-NFLX (VideoATLAS release): 112 streaming videos, 1000 fixed splits",
         where=lambda rel: ("6227737e2bf393c4eb9f822a12cef04a94118e74", rel), note=""),
    dict(name="p1203-open", folder="p1203-open", repo="itu-p1203/open-dataset", commit=P1203_MODE0,
         licence="non-commercial research licence (ITU-T P.1203 open dataset)", non_commercial=True,
         title="ITU-T P.1203 open databases TR04, TR06, VL04, VL13: 157 sessions, 239 MOS rows", where=_p1203,
         note="mode0 inputs, O46.csv and README.md are pinned; features/, subjective_scores/ and test_configs/ "
              "are not in the index used to pin commits and are pinned to HEAD"),
    dict(name="waterloo-sqoe-iv", folder="waterloo-sqoe-iv", repo="Leo-rojo/Analysis-of-Waterloo-IV-QoE-dataset",
         commit="HEAD", licence="CC BY 4.0", non_commercial=False,
         title="Waterloo SQoE-IV (partial): 1350 sessions with per-chunk streaming logs", where=_waterloo,
         note="commit not established (the data files are not in the index used to pin commits): pinned to "
              "HEAD; upstream folder 'WaterlooIV partial database'"),
    dict(name="videval-ugc", folder="videval-ugc", repo="vztu/VIDEVAL", commit="f0ccaa484b6c5c63ab8af49f6d4c1a36b9f10fd1",
         licence="MIT (VIDEVAL features); the source videos keep their own licences", non_commercial=False,
         title="VIDEVAL features + MOS: KoNViD-1k, YouTube-UGC, LIVE-VQA", where=_videval,
         note="per-file commits; files with several upstream versions (KONVID_1K_VIDEVAL_feats.mat) or not in "
              "the index (the light480_3fps files) are pinned to HEAD"),
    dict(name="continuous-qoe", folder="continuous-qoe", repo="lfovia/lstm_qoe",
         commit="fd40dc4ff6fcf7201332fee62e2fcebc75444712",
         licence="research use; cite Bampis et al. (LIVE-NFLX) and Eswara et al., IEEE TCSVT 2019", non_commercial=True,
         title="Continuous-time QoE: LIVE-NFLX (100 sessions) and LFOVIA QoE (36 videos)", where=_continuous,
         note="per-file commits (LIVE_Netflix/, LFOVIA_QoE/ were added in different commits)"),
    dict(name="clips", folder="clips", repo="several (see clips/clips.csv)", commit="per file",
         licence="the source repositories' licences (MIT; one non-commercial)", non_commercial=True,
         title="Five real H.264 clips (KoNViD-1k, LSVQ, VSFA demo) for feature-extraction tests", where=_clips,
         note="clips.csv (names, sources, MOS) was assembled by the data maintainers and has no upstream copy: "
              "optional, not fetched"),
    dict(name="ksqi", folder="published/ksqi", repo="zduanmu/ksqi", commit="9583871abfbddd3539348126526b1e03053e7909",
         licence="not stated in the files copied; see the upstream repository", non_commercial=False,
         title="Published scores and PLCC/SRCC/KRCC of 12 streaming-QoE models (KSQI paper)",
         where=lambda rel: ("9583871abfbddd3539348126526b1e03053e7909", "results/" + rel), note=""),
]


def sha256(path: Path) -> str:
    from deepqoe.features.video.cache import sha256_file

    return sha256_file(path)


def build(root: Path) -> dict:
    out = []
    for d in DATASETS:
        folder = root / d["folder"]
        if not folder.is_dir():
            raise SystemExit(f"{folder}: not a folder (is the data folder right?)")
        files = []
        for p in sorted(q for q in folder.rglob("*") if q.is_file()):
            rel = p.relative_to(folder).as_posix()
            where = d["where"](rel)
            if where is None:
                url = None
            elif len(where) == 3:
                url = RAW.format(repo=where[0], commit=where[1], path=where[2])
            else:
                url = RAW.format(repo=d["repo"], commit=where[0], path=where[1])
            files.append({"path": rel, "url": url.replace(" ", "%20") if url else None,
                          "sha256": sha256(p), "size": p.stat().st_size})
        out.append({k: d[k] for k in ("name", "folder", "title", "licence", "non_commercial", "repo", "commit",
                                      "note")} | {"files": files})
    return {"format": 1, "datasets": out}


def dumps(cat: dict) -> str:
    """JSON with one line per file (small diffs when a file changes)."""
    blocks = []
    for d in cat["datasets"]:
        head = json.dumps({k: v for k, v in d.items() if k != "files"}, indent=1)[:-2]
        rows = ",\n  ".join(json.dumps(f, separators=(",", ":")) for f in d["files"])
        blocks.append(f'{head},\n "files": [\n  {rows}\n ]\n}}')
    return '{"format": %d, "datasets": [\n' % cat["format"] + ",\n".join(blocks) + "\n]}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="the local data folder (files copied unchanged from upstream)")
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parents[1] / "src/deepqoe/datasets/catalog.json")
    a = ap.parse_args()
    cat = build(a.data)
    a.out.write_text(dumps(cat))
    n = sum(len(d["files"]) for d in cat["datasets"])
    print(f"wrote {a.out}: {len(cat['datasets'])} datasets, {n} files")


if __name__ == "__main__":
    main()
