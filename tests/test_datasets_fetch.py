"""``deepqoe datasets list | fetch | verify`` and the catalog, against a fixture HTTP server on 127.0.0.1
(never the internet): good download, resume after a cut, checksum mismatch, 404, disk full, the
non-commercial acknowledgement, and the ``fetch`` command named where data is missing."""

from __future__ import annotations

import errno
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import real_data
from deepqoe.cli import main
from deepqoe.datasets import catalog as cat_mod
from deepqoe.datasets import data_dir
from deepqoe.datasets import fetch as fetch_mod
from deepqoe.datasets.catalog import CatalogDataset, CatalogFile, catalog
from deepqoe.datasets.fetch import fetch_dataset, verify_dataset
from deepqoe.datasets.registry import _REGISTRY, load_session_dataset
from deepqoe.errors import DeepQoEError


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = int(re.match(r"bytes=(\d+)-", rng).group(1)) if rng else 0
        if start >= len(data) and rng:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        body = data[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = srv.cut.pop(self.path, None)
        self.wfile.write(body if cut is None else body[:cut])  # a cut: the connection closes early
        self.wfile.flush()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.cut, srv.requests = {}, {}, []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def _file(srv, rel: str, data: bytes, served: bytes | None = None, url: str | None = "") -> CatalogFile:
    """A catalog entry for ``data``; the server holds ``served`` (default: the same bytes)."""
    path = f"/repo/0123abcd/{rel}"
    srv.files[path] = data if served is None else served
    return CatalogFile(rel, None if url is None else srv.url + path, hashlib.sha256(data).hexdigest(), len(data))


def _dataset(name: str, files, non_commercial: bool = False, folder: str | None = None) -> CatalogDataset:
    return CatalogDataset(name=name, folder=folder or name, title="fixture", licence="fixture licence",
                          non_commercial=non_commercial, repo="owner/repo", commit="0123abcd", note="",
                          files=tuple(files))


def _use_catalog(monkeypatch, *datasets):
    monkeypatch.setattr(cat_mod, "catalog", lambda: {d.name: d for d in datasets})


BIG = bytes(range(256)) * 800  # 200 kB


# ------------------------------------------------------------------------------------- the catalog

def test_catalog_covers_every_registered_dataset_and_is_well_formed():
    cat = catalog()
    assert {"upec-qoe-lab", "live-nflx", "p1203-open", "waterloo-sqoe-iv", "videval-ugc", "continuous-qoe",
            "clips", "ksqi"} <= set(cat)
    for entry in _REGISTRY.values():   # every loader's folder is downloadable
        assert any(entry.folder == d.folder or entry.folder.startswith(d.folder + "/") for d in cat.values()), \
            entry.name
    for d in cat.values():
        assert d.files and len({f.path for f in d.files}) == len(d.files)
        assert re.fullmatch(r"[0-9a-f]{40}|HEAD|per file", d.commit), d.name
        for f in d.files:
            assert re.fullmatch(r"[0-9a-f]{64}", f.sha256) and f.size > 0
            assert f.url is None or re.match(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/([0-9a-f]{40}|HEAD)/",
                                             f.url), f.url
    assert all(f.url for d in cat.values() if d.name != "clips" for f in d.files)
    # "used by" is derived from the registry and the reproduce sections
    assert cat["upec-qoe-lab"].used_by[:1] == ["upec-qoe-lab"] and "reproduce mos" in cat["upec-qoe-lab"].used_by
    assert "lfovia-qoe" in cat["continuous-qoe"].loaders and "reproduce ugc" in cat["videval-ugc"].used_by
    assert cat_mod.resolve("lfovia-qoe").name == "continuous-qoe"
    with pytest.raises(DeepQoEError, match="did you mean 'konvid-1k'"):
        cat_mod.resolve("konvd-1k")


def test_catalog_hashes_match_the_shared_data():
    root = real_data("upec-qoe-lab").parent
    for d in catalog().values():
        r = verify_dataset(d, root)
        assert r.passed, (d.name, r.missing[:3], r.bad[:3])


# -------------------------------------------------------------------------------------- downloads

def test_good_download_then_nothing_to_do(server, tmp_path, capsys, monkeypatch):
    ds = _dataset("demo", [_file(server, "a.csv", b"x,y\n1,2\n"), _file(server, "sub/b.bin", BIG),
                           _file(server, "local.csv", b"assembled here", url=None)])
    _use_catalog(monkeypatch, ds)
    assert main(["datasets", "fetch", "demo", "--to", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path.absolute())           # stdout: the data directory only
    assert "fixture licence" in err and "2 file(s) downloaded" in err and "local.csv" in err
    assert (tmp_path / "demo/sub/b.bin").read_bytes() == BIG
    assert not list(tmp_path.rglob("*.part"))
    n = len(server.requests)
    assert main(["datasets", "fetch", "demo", "--to", str(tmp_path), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["datasets"][0]["downloaded"] == [] and len(server.requests) == n  # nothing asked again
    assert main(["datasets", "verify", "--to", str(tmp_path)]) == 0       # the optional file may be absent
    assert "demo: ok (2 file(s) ok" in capsys.readouterr().out


def test_resume_after_a_cut(server, tmp_path):
    f = _file(server, "big.bin", BIG)
    server.cut[f.url.replace(server.url, "")] = 150_000     # the connection drops after 150 kB of 200
    ds = _dataset("demo", [f])
    with pytest.raises(DeepQoEError, match="resume"):
        fetch_dataset(ds, tmp_path)
    part = tmp_path / "demo/big.bin.part"
    have = part.stat().st_size   # the whole chunks received (the last partial chunk is not kept)
    assert 0 < have <= 150_000 and not (tmp_path / "demo/big.bin").exists()
    res = fetch_dataset(ds, tmp_path)
    assert res.downloaded == ["big.bin"] and (tmp_path / "demo/big.bin").read_bytes() == BIG
    assert server.requests[-1][1] == f"bytes={have}-" and not part.exists()


def test_checksum_mismatch_keeps_nothing(server, tmp_path, capsys, monkeypatch):
    ds = _dataset("demo", [_file(server, "a.csv", b"pinned version\n", served=b"another version\n")])
    with pytest.raises(DeepQoEError, match="checksum mismatch"):
        fetch_dataset(ds, tmp_path)
    assert not list((tmp_path / "demo").iterdir())
    _use_catalog(monkeypatch, ds)
    assert main(["datasets", "fetch", "demo", "--to", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_http_404(server, tmp_path):
    f = _file(server, "gone.csv", b"data")
    del server.files[f.url.replace(server.url, "")]
    with pytest.raises(DeepQoEError, match="HTTP 404") as e:
        fetch_dataset(_dataset("demo", [f]), tmp_path)
    assert e.value.file.endswith("gone.csv")


def test_disk_full_then_resume(server, tmp_path, monkeypatch):
    f = _file(server, "big.bin", BIG)
    real_open = open

    class _Full:
        def __init__(self, fh):
            self.fh, self.n = fh, 0

        def write(self, b):
            if self.n >= 3:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.n += 1
            return self.fh.write(b)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.fh.close()

    def full_open(path, mode="r", *a, **k):
        fh = real_open(path, mode, *a, **k)
        return _Full(fh) if ("w" in mode or "a" in mode) else fh

    monkeypatch.setattr(fetch_mod, "open", full_open, raising=False)
    with pytest.raises(DeepQoEError, match="disk full") as e:
        fetch_dataset(_dataset("demo", [f]), tmp_path)
    assert e.value.file.endswith("big.bin")
    part = tmp_path / "demo/big.bin.part"
    assert 0 < part.stat().st_size < len(BIG)
    monkeypatch.undo()
    fetch_dataset(_dataset("demo", [f]), tmp_path)       # space freed: the download resumes
    assert (tmp_path / "demo/big.bin").read_bytes() == BIG
    assert server.requests[-1][1] == f"bytes={3 * fetch_mod.CHUNK}-"


def test_non_commercial_licence_needs_the_flag(server, tmp_path, capsys, monkeypatch):
    _use_catalog(monkeypatch, _dataset("nc", [_file(server, "a.csv", b"1\n")], non_commercial=True),
                 _dataset("free", [_file(server, "b.csv", b"2\n")]))
    assert main(["datasets", "fetch", "--all", "--to", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "non-commercial" in err and "deepqoe datasets fetch nc free --accept-non-commercial" in err
    assert not (tmp_path / "free").exists() and server.requests == []   # nothing downloaded
    assert main(["datasets", "fetch", "--all", "--accept-non-commercial", "--to", str(tmp_path)]) == 0
    assert (tmp_path / "nc/a.csv").exists() and (tmp_path / "free/b.csv").exists()
    assert main(["datasets", "fetch", "--to", str(tmp_path)]) == 2      # neither names nor --all


def test_verify_lists_missing_and_different_files(server, tmp_path, capsys, monkeypatch):
    ds = _dataset("demo", [_file(server, "a.csv", b"1\n"), _file(server, "b.csv", b"2\n")])
    _use_catalog(monkeypatch, ds)
    fetch_dataset(ds, tmp_path)
    (tmp_path / "demo/a.csv").write_bytes(b"changed\n")
    (tmp_path / "demo/b.csv").unlink()
    assert main(["datasets", "verify", "--to", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "different demo/a.csv" in out and "missing   demo/b.csv" in out
    assert main(["datasets", "verify", "demo", "--to", str(tmp_path), "--json"]) == 1
    res = json.loads(capsys.readouterr().out)
    assert res["ok"] is False and res["datasets"][0]["bad"] == ["demo/a.csv"]
    assert fetch_dataset(ds, tmp_path).downloaded == ["a.csv", "b.csv"]  # fetch repairs both
    assert main(["datasets", "verify", "--to", str(tmp_path)]) == 0


def test_list_table_and_json(capsys):
    assert main(["datasets", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(catalog())
    assert rows["p1203-open"]["non_commercial"] is True and rows["p1203-open"]["size_bytes"] > 1e6
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["name", "size", "files"] and len(out) == 1 + len(rows)


# ------------------------------------------------------------------- missing data names the command

def test_data_dir_default_and_missing_message(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPQOE_DATA", raising=False)
    monkeypatch.setattr(cat_mod, "default_data_dir", lambda: tmp_path / "nothing-yet")
    with pytest.raises(DeepQoEError, match=r"DEEPQOE_DATA.*deepqoe datasets fetch --all"):
        data_dir()
    assert data_dir(required=False) is None
    (tmp_path / "nothing-yet").mkdir()
    assert data_dir() == tmp_path / "nothing-yet"           # where `fetch` puts the data by default


def test_loader_missing_file_names_the_fetch_command(tmp_path):
    with pytest.raises(DeepQoEError, match=r"deepqoe datasets fetch live-nflx`"):
        load_session_dataset("live-nflx", root=tmp_path)
    with pytest.raises(DeepQoEError, match=r"deepqoe datasets fetch p1203-open --accept-non-commercial"):
        load_session_dataset("p1203-open", root=tmp_path)


def test_reproduce_names_the_fetch_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DEEPQOE_DATA", str(tmp_path))
    assert main(["reproduce", "mos", "--quick", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "deepqoe datasets fetch upec-qoe-lab" in err
    assert main(["reproduce", "ugc", "--quick", "--out", str(tmp_path / "o")]) == 1
    assert "deepqoe datasets fetch videval-ugc" in capsys.readouterr().err
