"""The dataset registry: names, kinds, errors, and that every entry loads from the shared data."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import real_data

from deepqoe.datasets.registry import (KINDS, dataset_names, get_dataset, load_continuous_dataset,
                                       load_session_dataset, register)
from deepqoe.errors import DeepQoEError

EXPECTED = {"p1203-open": "sessions", "waterloo-sqoe-iv": "sessions", "live-nflx": "sessions",
            "live-nflx-continuous": "continuous", "lfovia-qoe": "continuous", "konvid-1k": "videval",
            "youtube-ugc": "videval", "live-vqa": "videval", "upec-qoe-lab": "table"}


def test_names_and_kinds():
    assert set(dataset_names()) == set(EXPECTED)
    for kind in KINDS:
        assert set(dataset_names(kind)) == {n for n, k in EXPECTED.items() if k == kind}
    for name, kind in EXPECTED.items():
        e = get_dataset(name)
        assert e.name == name and e.kind == kind and callable(e.loader)
        assert e.licence.strip() and e.upstream.strip() and e.folder.strip()
    with pytest.raises(DeepQoEError, match="unknown dataset kind"):
        dataset_names("video")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(DeepQoEError) as e:
        get_dataset("live-nflx-2")
    msg = str(e.value)
    assert "unknown dataset 'live-nflx-2'" in msg and "did you mean 'live-nflx'" in msg
    for name in EXPECTED:
        assert name in msg
    with pytest.raises(DeepQoEError, match="known datasets: "):
        load_session_dataset("nothing-like-it")


def test_kind_mismatch_and_duplicates_are_errors():
    with pytest.raises(DeepQoEError, match="continuous dataset, not a sessions one"):
        load_session_dataset("lfovia-qoe")
    with pytest.raises(DeepQoEError, match="already registered"):
        register("p1203-open", "sessions", lambda root=None: None, folder="x", licence="x", upstream="x")
    with pytest.raises(DeepQoEError, match="unknown kind"):
        register("new-one", "images", lambda root=None: None, folder="x", licence="x", upstream="x")
    assert "new-one" not in dataset_names()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_entry_has_its_folder(name):
    real_data(*get_dataset(name).folder.split("/"))


def test_loading_by_name(monkeypatch):
    real_data("p1203-open")
    ds = load_session_dataset("p1203-open")
    assert ds.name == "p1203-open" and len(ds.sessions) == len(ds.mos) == 239
    root = real_data("continuous-qoe").parent
    cont = load_continuous_dataset("lfovia-qoe", root)
    assert cont.name == "lfovia-qoe" and len(cont.sessions) == 36
    vid = get_dataset("konvid-1k").load()
    assert vid.name == "konvid-1k" and len(vid.y) == 1200
    root = real_data("upec-qoe-lab").parent
    monkeypatch.delenv("DEEPQOE_DATA")          # the root given is enough
    table = get_dataset("upec-qoe-lab").load(root)
    assert len(table) == 562 and set(np.unique(table.y)) <= {1, 2, 3, 4, 5}
