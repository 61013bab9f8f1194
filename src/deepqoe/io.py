"""Files in and out: reading tables with clear errors, and writing atomically.

Nothing is ever written half-way: files are written to a temporary name in the same folder, then
renamed; model directories are built in a temporary folder, then renamed into place.

Temporary files and folders are hidden siblings of their target named
``.deepqoe-tmp.<host>.<pid>.<target name>.<random>`` (:data:`TEMP_PREFIX`). One left behind by a writer
that was killed is removed by the next atomic write into the same folder: when its writer process (on
this host) is gone, or when it is older than :data:`STALE_TEMP_SECONDS` (1 hour).
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import shutil
import socket
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from deepqoe.errors import DeepQoEError


def _json_default(o: Any):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean_floats(o: Any):
    """JSON has no NaN/inf: write them as null."""
    if isinstance(o, float):
        return o if np.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _clean_floats(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean_floats(v) for v in o]
    return o


def to_json(obj: Any, indent: int | None = 2) -> str:
    return json.dumps(_clean_floats(obj), indent=indent, default=_json_default, allow_nan=False)


# ---- temporary files: recognisable names, stale ones cleaned -------------------------------------------
TEMP_PREFIX = ".deepqoe-tmp."
STALE_TEMP_SECONDS = 3600.0
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _temp_prefix(target: Path) -> str:
    return f"{TEMP_PREFIX}{_HOST}.{os.getpid()}.{target.name}."


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # no cheap check there: rely on the age
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def is_stale_temp(path: Path, now: float | None = None) -> bool:
    """Whether ``path`` is a temporary file or folder of an atomic write that can no longer finish: its
    writer (a process on this host) is gone, or it is older than :data:`STALE_TEMP_SECONDS`."""
    if not path.name.startswith(TEMP_PREFIX):
        return False
    try:
        age = (time.time() if now is None else now) - path.lstat().st_mtime
    except OSError:
        return False
    if age > STALE_TEMP_SECONDS:
        return True
    host, _, rest = path.name[len(TEMP_PREFIX):].partition(".")
    pid = rest.partition(".")[0]
    return host == _HOST and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid))


def clean_stale_temp(folder: str | os.PathLike) -> list[Path]:
    """Remove the stale temporary files and folders (:func:`is_stale_temp`) of ``folder``; return them.
    Called by every atomic write before it creates its own temporary file."""
    removed = []
    try:
        entries = [Path(e.path) for e in os.scandir(folder) if e.name.startswith(TEMP_PREFIX)]
    except OSError:
        return removed
    now = time.time()
    for p in entries:
        if not is_stale_temp(p, now):
            continue
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_blocker(path: str | os.PathLike, permission: bool = True, probe: bool = True) -> str | None:
    """Why nothing can be created at ``path`` (a file or a folder, with any missing folders above it): its
    nearest existing parent is a file, or (``permission``) a folder we may not write in; None otherwise.

    ``probe``: also create (and at once remove) a temporary folder there. The permission bits do not say it
    all: root passes every one of them, and a read-only or virtual file system (``/proc``, ``/sys``) refuses
    a new entry whatever they say; only trying tells."""
    up = next((a for a in Path(path).absolute().parents if a.exists() or a.is_symlink()), None)
    if up is None:
        return None
    if not up.is_dir():
        return f"'{up}' is a file, not a folder"
    if permission and not os.access(up, os.W_OK | os.X_OK):
        return f"no permission to write in '{up}'"
    if probe:
        import errno

        try:
            os.rmdir(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{_HOST}.{os.getpid()}.probe.", dir=up))
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM):
                return f"no permission to write in '{up}'"
            if e.errno == errno.EROFS:
                return f"'{up}' is on a read-only file system"
            return f"'{up}' takes no new files or folders (the system says: {e.strerror or e})"
    return None


def _temp_beside(path: Path, suffix: str) -> tuple[int, str]:
    """A temporary file in ``path``'s folder (created with it), for a file written to ``path``: a
    DeepQoEError naming ``path`` when that cannot be (a folder there, a file where a folder should be, no
    permission, a read-only file system)."""
    if path.is_dir():
        raise DeepQoEError("is a folder; give a file name for this output", file=str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temp(path.parent)
        return tempfile.mkstemp(prefix=_temp_prefix(path), suffix=suffix, dir=path.parent)
    except OSError as e:
        why = write_blocker(path, permission=False) or e.strerror or str(e)
        raise DeepQoEError(f"cannot write this file: {why}", file=str(path)) from None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    fd, tmp = _temp_beside(path, ".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, to_json(obj) + "\n")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` when the block succeeds."""
    path = Path(path)
    fd, tmp = _temp_beside(path, path.suffix or ".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


#: What a model directory holds (:func:`deepqoe.persistence.write_model_files`: model.json, the weights and
#: JSON files beside them; the shipped models' cards): anything else in one is someone's, and replacing the
#: directory would delete it.
MODEL_DIR_ENTRIES = ("model.json", "model.safetensors", "*.json", "MODEL_CARD.md")


def check_output_dir(path: str | os.PathLike, marker: str = "model.json",
                     what: str = "a deepqoe model directory") -> Path:
    """``path`` as a folder a command may write (and replace): new, empty, or ``what`` (it holds a file
    matching ``marker``), never a file or a folder of someone's other files: a DeepQoEError otherwise. A
    model directory (``marker`` model.json) that also holds files a model directory does not
    (:data:`MODEL_DIR_ENTRIES`: notes, plots, a subfolder) is not replaced either: that would delete them."""
    import fnmatch

    path = Path(path)
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise DeepQoEError(f"exists and is not a folder; the output is a folder ({what}): give a new name",
                               file=str(path))
        if any(path.iterdir()) and not any(path.glob(marker)):
            raise DeepQoEError(f"exists and is not {what} (no {marker} in it), so it is not replaced: give a new "
                               "or empty folder, or remove it first", file=str(path))
        if marker == "model.json":
            other = sorted(f.name + ("/" if f.is_dir() else "") for f in path.iterdir()
                           if f.is_dir() or not any(fnmatch.fnmatch(f.name, m) for m in MODEL_DIR_ENTRIES))
            if other:
                more = f" and {len(other) - 3} more" if len(other) > 3 else ""
                raise DeepQoEError(f"is {what} that also holds other files ({', '.join(other[:3])}{more}); "
                                   "replacing it would delete them: move them out, or give a new folder",
                                   file=str(path))
    return path


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, marker: str = "model.json",
                     what: str = "a deepqoe model directory") -> Iterator[Path]:
    """Build a directory in a temporary sibling, then move it into place (replacing an old one): every file
    written into the yielded folder appears at ``path`` together, or none does. An old directory at
    ``path`` is first moved aside into a temporary sibling, then removed; only one that is empty or
    ``what`` (:func:`check_output_dir`), checked before and again after the work."""
    path = check_output_dir(path, marker, what)
    try:  # the temporary folder beside the target: a refusal names the target, not the temporary name
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temp(path.parent)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), dir=path.parent))
    except OSError as e:
        why = write_blocker(path, permission=False) or e.strerror or str(e)
        raise DeepQoEError(f"cannot create this folder: {why}", file=str(path)) from None
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        for f in tmp.rglob("*"):
            os.chmod(f, (0o777 if f.is_dir() else 0o666) & ~_umask())
        check_output_dir(path, marker, what)  # still (it may have appeared during the work)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_temp_prefix(path) + "old.", dir=path.parent))
            os.replace(path, old / "d")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".dat", ".parquet", ".pq", ".jsonl", ".ndjson")


def columns_hint(path: str | os.PathLike, columns) -> str:
    """The column names of a table, for an error message ("columns are: a, b, c"). A file that does not
    look like a table (no table suffix, or a single column) gets no names: its first line could be
    anything (a password file, a key), and an error must not print it."""
    columns = [str(c) for c in columns]
    if Path(path).suffix.lower() not in TABLE_SUFFIXES or len(columns) < 2:
        return (f"the file has {len(columns)} column(s) and does not look like a table (is it a CSV/Parquet "
                "file, and is reader.sep right?)")
    names = [c if len(c) <= 40 else c[:37] + "..." for c in columns[:30]]
    more = f", ... ({len(columns)} columns)" if len(columns) > 30 else ""
    return f"columns are: {', '.join(names)}{more}"


def _first_repeated(names) -> str | None:
    seen = set()
    for c in (str(c).strip() for c in names):
        if c in seen:
            return c
        seen.add(c)
    return None


def _duplicate_header(p: Path, df: pd.DataFrame, sep: str, encoding: str) -> str | None:
    """The first column name that the file's header repeats (pandas renames a repeated 'x' to 'x.1')."""
    names = [str(c).strip() for c in df.columns]
    if (dup := _first_repeated(names)) is not None:
        return dup
    seen = set(names)
    mangled = [c for c in names if "." in c and c.rsplit(".", 1)[1].isdigit() and c.rsplit(".", 1)[0] in seen]
    if not mangled or p.suffix.lower() in (".parquet", ".pq", ".jsonl", ".ndjson"):
        return None
    header = pd.read_csv(p, sep=sep, encoding=encoding, header=None, nrows=1, dtype=str).iloc[0]
    raw = [str(c).strip() for c in header.tolist()]
    return next((c for i, c in enumerate(raw) if c in raw[:i]), None)


def _first_line(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:300] if lines else type(e).__name__


def read_table(path: str | os.PathLike, sep: str = ",", decimal: str = ".", encoding: str = "utf-8",
               dtype: dict | None = None, only_empty_is_missing: bool = False) -> pd.DataFrame:
    """Read a CSV / TSV / Parquet / JSON-lines table; any problem becomes a DeepQoEError naming the file.
    A column name that appears twice in the header is an error (pandas would rename the second one).
    ``only_empty_is_missing``: in a CSV only an empty cell is missing; text such as ``NaN``, ``N/A`` or
    ``null`` stays text (pandas reads it as missing by default), for the caller to refuse as not a number.
    ``dtype``: pandas' column types for a CSV / JSON-lines table; a column given ``str`` stays text as written
    (ids: ``001`` stays ``'001'``), also with ``decimal``."""
    p = Path(path)
    if not p.exists():
        raise DeepQoEError("file not found", file=str(p))
    if p.is_dir():
        raise DeepQoEError("is a folder, expected a table file (CSV or Parquet)", file=str(p))
    if p.stat().st_size == 0:
        raise DeepQoEError("the file is empty", file=str(p))
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DeepQoEError(f"unknown text encoding {encoding!r}", file=str(p)) from None
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            dup = _first_repeated(pq.read_schema(p).names)
            if dup is not None:  # pyarrow cannot even read such a file into a table
                raise DeepQoEError("the schema names this column twice; rename one of them", file=str(p),
                                   column=dup)
            df = pd.read_parquet(p)
        elif suffix in (".jsonl", ".ndjson"):
            df = pd.read_json(p, lines=True, dtype=dtype)
        else:
            if suffix == ".tsv" and sep == ",":
                sep = "\t"
            # low_memory=False: each column's type from the whole file (no DtypeWarning, no mixed chunks)
            na = {"keep_default_na": False, "na_values": [""]} if only_empty_is_missing else {}
            df = pd.read_csv(p, sep=sep, decimal=decimal, encoding=encoding, dtype=dtype, low_memory=False, **na)
        dup = _duplicate_header(p, df, sep, encoding)
    except UnicodeDecodeError:
        raise DeepQoEError(f"not a text file in {encoding} (is it a CSV?)", file=str(p)) from None
    except pd.errors.EmptyDataError:
        raise DeepQoEError("the file has no columns (empty table)", file=str(p)) from None
    except DeepQoEError:
        raise
    except pd.errors.ParserError as e:
        raise DeepQoEError(f"cannot parse the table: {_first_line(e)}", file=str(p)) from None
    except (OSError, ValueError) as e:
        raise DeepQoEError(f"cannot read the table: {_first_line(e)}", file=str(p)) from None
    if dup is not None:
        raise DeepQoEError("the header names this column twice; rename one of them", file=str(p), column=dup)
    if len(df) == 0:
        raise DeepQoEError("the table has a header but no rows", file=str(p))
    df.columns = [str(c).strip() for c in df.columns]
    if decimal != "." and suffix not in (".parquet", ".pq", ".jsonl", ".ndjson"):
        _numbers_with_decimal(df, decimal, skip={str(c).strip() for c, t in (dtype or {}).items() if t is str})
    return df


def _numbers_with_decimal(df: pd.DataFrame, decimal: str, skip=()) -> None:
    """In text columns (pandas converts a column with ``decimal`` only when every value is a number), turn
    the values written as numbers with ``decimal`` into numbers, as pandas does for the whole column: a bad
    value then is the one reported, not the first number beside it."""
    pattern = re.compile(r"^\s*[-+]?(\d+(" + re.escape(decimal) + r"\d*)?|" + re.escape(decimal) + r"\d+)"
                         r"([eE][-+]?\d+)?\s*$")
    for c in df.columns:
        s = df[c]
        if c in skip or not (s.dtype == object or pd.api.types.is_string_dtype(s)):  # skip: read as text
            continue
        num = s.map(lambda v: isinstance(v, str) and bool(pattern.match(v))).to_numpy(dtype=bool)
        if num.any() and not num.all():
            df[c] = pd.Series([float(v.strip().replace(decimal, ".")) if k else v for v, k in zip(s, num)],
                              index=s.index, dtype=object)


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write CSV or Parquet (by suffix), atomically."""
    p = Path(path)
    with atomic_path(p) as tmp:
        if p.suffix.lower() in (".parquet", ".pq"):
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
