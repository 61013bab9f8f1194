"""The catalog of downloadable datasets: what ``deepqoe datasets list | fetch | verify`` know.

Read from ``catalog.json`` beside this module (written by ``scripts/make_dataset_manifest.py`` from a local
data folder): per dataset its name, folder under the data directory, licence (and whether it is
non-commercial), upstream repository and pinned commit, and per file its path in the folder, URL (a
``raw.githubusercontent.com/<repo>/<commit>/<path>`` address), SHA-256 and size. A file whose ``url`` is null
has no upstream copy: it is optional (never fetched, verified only when present).

"Used by" is derived, not typed twice: the registry's loaders whose folder lies in the dataset's folder
(:mod:`deepqoe.datasets.registry`), and the ``deepqoe reproduce`` sections (:data:`deepqoe.experiments.SECTIONS`)
whose modules or recipes name one of those loaders or the folder.

The default data directory is a per-user folder (:func:`default_data_dir`, from ``platformdirs``);
``DEEPQOE_DATA`` overrides it (:func:`deepqoe.datasets.data_dir`).
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

from deepqoe.errors import DeepQoEError

CATALOG_FILE = Path(__file__).with_name("catalog.json")


@dataclass(frozen=True)
class CatalogFile:
    path: str                 # relative to the dataset's folder
    url: str | None           # None: no upstream copy (optional file)
    sha256: str
    size: int


@dataclass(frozen=True)
class CatalogDataset:
    name: str
    folder: str               # under the data directory
    title: str
    licence: str
    non_commercial: bool
    repo: str
    commit: str
    note: str
    files: tuple[CatalogFile, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def loaders(self) -> list[str]:
        """The registry's datasets read from this folder."""
        from deepqoe.datasets.registry import _REGISTRY

        return [n for n, e in _REGISTRY.items() if e.folder == self.folder or e.folder.startswith(self.folder + "/")]

    @property
    def sections(self) -> list[str]:
        """The ``deepqoe reproduce`` sections that read this dataset."""
        tokens = [self.name, self.folder, *self.loaders]
        pats = [re.compile(rf"(?<![\w\-/]){re.escape(t)}(?![\w\-])") for t in dict.fromkeys(tokens)]
        return [s for s, text in _section_texts().items() if any(p.search(text) for p in pats)]

    @property
    def used_by(self) -> list[str]:
        return self.loaders + [f"reproduce {s}" for s in self.sections]


def _module_source(name: str) -> tuple[str, list[str]]:
    """A module's source and the ``deepqoe.experiments`` modules it imports."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return "", []
    text = Path(spec.origin).read_text(encoding="utf-8")
    deps = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("deepqoe.experiments"):
            deps.append(node.module)
            if node.module == "deepqoe.experiments":
                deps += [f"deepqoe.experiments.{a.name}" for a in node.names]
    return text, deps


@functools.lru_cache(maxsize=1)
def _section_texts() -> dict[str, str]:
    """Per reproduce section: the text of its module, the experiment modules it imports (transitively) and
    the recipes they load."""
    from deepqoe.experiments import SECTIONS
    from deepqoe.experiments.common import RECIPES

    out = {}
    for section, module in SECTIONS.items():
        seen, todo, texts = set(), [f"deepqoe.experiments.{module}"], []
        while todo:
            m = todo.pop()
            if m in seen or m in ("deepqoe.experiments", "deepqoe.experiments.common"):
                continue
            seen.add(m)
            text, deps = _module_source(m)
            texts.append(text)
            todo += deps
        code = "\n".join(texts)
        for recipe in sorted(RECIPES.glob("*.yaml")):
            if re.search(rf"""["']{re.escape(recipe.stem)}["']""", code):
                texts.append(recipe.read_text(encoding="utf-8"))
        out[section] = "\n".join(texts)
    return out


@functools.lru_cache(maxsize=1)
def catalog() -> dict[str, CatalogDataset]:
    """Every dataset of the catalog, by name."""
    raw = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))
    out = {}
    for d in raw["datasets"]:
        files = tuple(CatalogFile(**f) for f in d.pop("files"))
        out[d["name"]] = CatalogDataset(**d, files=files)
    return out


def resolve(name: str) -> CatalogDataset:
    """A catalog dataset by its name or by a registry name it holds (``lfovia-qoe`` -> ``continuous-qoe``)."""
    cat = catalog()
    if name in cat:
        return cat[name]
    for ds in cat.values():
        if name in ds.loaders:
            return ds
    known = list(cat) + [n for ds in cat.values() for n in ds.loaders if n not in cat]
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise DeepQoEError(f"unknown dataset '{name}'{hint}; datasets: {', '.join(cat)}")


def default_data_dir() -> Path:
    """The per-user data directory ``deepqoe datasets fetch`` fills when ``DEEPQOE_DATA`` is not set."""
    import platformdirs

    return Path(platformdirs.user_data_path("deepqoe", appauthor=False)) / "datasets"


def fetch_command(datasets) -> str:
    """The ``deepqoe datasets fetch`` command line that gets ``datasets`` (names or CatalogDatasets)."""
    ds = [d if isinstance(d, CatalogDataset) else resolve(d) for d in datasets]
    names = list(dict.fromkeys(d.name for d in ds))
    flag = " --accept-non-commercial" if any(d.non_commercial for d in ds) else ""
    return f"deepqoe datasets fetch {' '.join(names)}{flag}"


def dataset_of_path(path) -> CatalogDataset | None:
    """The catalog dataset a file of the data directory belongs to (by its folder), or None."""
    posix = "/" + Path(path).as_posix().strip("/") + "/"
    best = None
    for ds in catalog().values():
        if f"/{ds.folder}/" in posix and (best is None or len(ds.folder) > len(best.folder)):
            best = ds
    return best


def missing_hint(path) -> str:
    """``; run `deepqoe datasets fetch NAME`...`` for a missing file of a catalog dataset, else ``""``."""
    ds = dataset_of_path(path)
    return f"; run `{fetch_command([ds])}` to download it" if ds else ""


def missing_for_sections(sections, root: Path) -> list[CatalogDataset]:
    """The catalog datasets some of ``sections`` read that have files missing under ``root``."""
    out = []
    for ds in catalog().values():
        if set(ds.sections) & set(sections) and any(
                f.url and not (root / ds.folder / f.path).is_file() for f in ds.files):
            out.append(ds)
    return out
