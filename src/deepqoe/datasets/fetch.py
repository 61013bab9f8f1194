"""Download catalog datasets into the data directory (verified, resumable) and verify what is there.

Downloads go through ``pooch`` (:func:`pooch.retrieve`: SHA-256 checked before the file takes its final
name, so a bad download never looks like data). :class:`ResumableDownloader` keeps the bytes received so
far in ``<file>.part`` and asks the server for the rest with an HTTP ``Range`` header on the next try, so an
interrupted ``deepqoe datasets fetch`` continues where it stopped. Every failure (HTTP error, checksum
mismatch, disk full) is a :class:`~deepqoe.errors.DeepQoEError` naming the file and what to do.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from deepqoe.datasets.catalog import CatalogDataset, CatalogFile
from deepqoe.errors import DeepQoEError

CHUNK = 1 << 16


class ResumableDownloader:
    """A pooch downloader that resumes ``<target>.part`` with an HTTP Range request."""

    def __init__(self, part: Path, timeout: float = 60.0):
        self.part = Path(part)
        self.timeout = timeout

    def __call__(self, url: str, output_file, pooch_obj=None, check_only: bool = False):
        import requests

        if check_only:
            r = requests.head(url, allow_redirects=True, timeout=self.timeout)
            return r.status_code == 200
        have = self.part.stat().st_size if self.part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as r:
            if r.status_code == 416 and have:   # nothing left to send: the .part is complete (or bad)
                pass
            else:
                r.raise_for_status()
                mode = "ab" if have and r.status_code == 206 else "wb"   # 200: the server ignored Range
                with open(self.part, mode) as f:
                    for block in r.iter_content(CHUNK):
                        f.write(block)
        os.replace(self.part, output_file)


def sha256_of(path: Path) -> str:
    from deepqoe.features.video.cache import sha256_file

    return sha256_file(path)


@dataclass
class FetchResult:
    dataset: str
    downloaded: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)      # already there with the right hash
    skipped: list[str] = field(default_factory=list)      # optional files with no upstream copy


def fetch_file(f: CatalogFile, target: Path, timeout: float = 60.0) -> bool:
    """Put ``f`` at ``target``; False when it was already there with the right hash."""
    import pooch
    import requests

    if target.is_file() and target.stat().st_size == f.size and sha256_of(target) == f.sha256:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    pooch.get_logger().setLevel("WARNING")
    try:
        pooch.retrieve(f.url, known_hash=f"sha256:{f.sha256}", fname=target.name, path=target.parent,
                       downloader=ResumableDownloader(part, timeout), progressbar=False)
    except requests.HTTPError as e:
        code = e.response.status_code if e.response is not None else "?"
        raise DeepQoEError(f"download failed: HTTP {code} for {f.url}", file=str(target)) from None
    except requests.RequestException as e:
        raise DeepQoEError(f"download failed ({type(e).__name__}) for {f.url}; run the same command again to "
                           "resume", file=str(target)) from None
    except ValueError as e:
        if "hash" not in str(e).lower():
            raise
        part.unlink(missing_ok=True)
        raise DeepQoEError(f"checksum mismatch: the file at {f.url} is not the pinned version (SHA-256 "
                           f"{f.sha256[:12]}...); nothing was kept", file=str(target)) from None
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise DeepQoEError("disk full while downloading; free some space and run the same command again "
                               "(the download resumes)", file=str(target)) from None
        raise DeepQoEError(f"cannot write the file: {e.strerror or e}", file=str(target)) from None
    return True


def fetch_dataset(ds: CatalogDataset, root: Path, log: Callable[[str], None] = lambda s: None,
                  timeout: float = 60.0, progress: bool = False) -> FetchResult:
    """Download every file of ``ds`` missing (or different) under ``root / ds.folder`` (``progress``: a
    bar in bytes on standard error)."""
    import sys

    from tqdm.auto import tqdm

    res = FetchResult(ds.name)
    with tqdm(total=sum(f.size for f in ds.files), unit="B", unit_scale=True, desc=ds.name, file=sys.stderr,
              disable=not progress, leave=False) as bar:
        for f in ds.files:
            target = root / ds.folder / f.path
            if f.url is None:
                res.skipped.append(f.path)
            elif fetch_file(f, target, timeout):
                res.downloaded.append(f.path)
            else:
                res.present.append(f.path)
            bar.update(f.size)
    log(f"{ds.name}: {len(res.downloaded)} file(s) downloaded, {len(res.present)} already there"
        + (f", {len(res.skipped)} optional file(s) with no upstream copy not fetched: {', '.join(res.skipped)}"
           if res.skipped else ""))
    return res


@dataclass
class VerifyResult:
    dataset: str
    ok: int = 0
    missing: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)          # present with another hash

    @property
    def passed(self) -> bool:
        return not self.missing and not self.bad


def verify_dataset(ds: CatalogDataset, root: Path) -> VerifyResult:
    """Check every file of ``ds`` under ``root``: present (optional files excepted) and the pinned hash."""
    res = VerifyResult(ds.name)
    for f in ds.files:
        p = root / ds.folder / f.path
        rel = f"{ds.folder}/{f.path}"
        if not p.is_file():
            if f.url is not None:
                res.missing.append(rel)
        elif p.stat().st_size != f.size or sha256_of(p) != f.sha256:
            res.bad.append(rel)
        else:
            res.ok += 1
    return res
