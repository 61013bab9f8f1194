"""``deepqoe datasets list | fetch | verify``: the public datasets, downloaded and checked in one command.

The data directory is ``--to DIR``, else ``DEEPQOE_DATA``, else the per-user folder
(:func:`deepqoe.datasets.catalog.default_data_dir`), which every loader finds without any setting.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from deepqoe.cli import ExitCode, UsageError, print_json, show_progress, status
from deepqoe.errors import DeepQoEError


def register(subparsers) -> None:
    p = subparsers.add_parser("datasets", help="list, download (fetch) and verify the public datasets",
                              description="The public QoE datasets the loaders and `deepqoe reproduce` read: "
                                          "each pinned to an upstream commit with a SHA-256 per file.")
    sub = p.add_subparsers(dest="datasets_command", metavar="ACTION")

    ls = sub.add_parser("list", help="the datasets: size, licence, upstream, what uses them",
                        description="One row per dataset on standard output (or --json).")
    ls.add_argument("--json", action="store_true", help="the catalog (without the file list) as JSON")
    ls.set_defaults(func=_list)

    f = sub.add_parser("fetch", help="download datasets into the data directory (verified, resumable)",
                       description="Download the files of each dataset into DIR/<folder>, check their SHA-256 and "
                                   "skip those already there. An interrupted download resumes on the next run. "
                                   "Prints the data directory on standard output.")
    f.add_argument("names", nargs="*", metavar="NAME",
                   help="datasets (a catalog name, or a loader name such as lfovia-qoe)")
    f.add_argument("--all", action="store_true", help="every dataset of the catalog")
    f.add_argument("--to", type=Path, default=None, metavar="DIR",
                   help="the data directory (default: DEEPQOE_DATA, else the per-user data folder)")
    f.add_argument("--accept-non-commercial", action="store_true",
                   help="acknowledge the non-commercial (research-only) licence of the datasets that have one")
    f.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server")
    f.add_argument("--json", action="store_true", help="what was downloaded, as JSON on standard output")
    f.set_defaults(func=_fetch)

    v = sub.add_parser("verify", help="check that the files are there with the pinned SHA-256",
                       description="Exit 0 when every file of the datasets is present with its pinned SHA-256, "
                                   "1 otherwise (the missing and different files are listed).")
    v.add_argument("names", nargs="*", metavar="NAME", help="datasets to check (default: all)")
    v.add_argument("--to", type=Path, default=None, metavar="DIR", help="the data directory (as for fetch)")
    v.add_argument("--json", action="store_true", help="the result as JSON on standard output")
    v.set_defaults(func=_verify)


def _root(to: Path | None) -> Path:
    from deepqoe.datasets.catalog import default_data_dir

    env = os.environ.get("DEEPQOE_DATA")
    root = to.expanduser() if to is not None else Path(env).expanduser() if env else default_data_dir()
    if root.exists() and not root.is_dir():
        raise DeepQoEError("the data directory is a file, not a folder ("
                           + ("--to" if to is not None else "DEEPQOE_DATA" if env else "the default") + ")",
                           file=str(root))
    return root


def _mb(n: int) -> str:
    """A download size for people: MB from 1 MB, kB below (a 47 kB file is not '0.0 MB')."""
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{max(1, round(n / 1e3))} kB"


def _list(args) -> int:
    from deepqoe.datasets.catalog import catalog

    rows = [{"name": d.name, "folder": d.folder, "title": d.title, "size_bytes": d.size, "files": len(d.files),
             "licence": d.licence, "non_commercial": d.non_commercial, "upstream": d.repo, "commit": d.commit,
             "note": d.note, "used_by": d.used_by} for d in catalog().values()]
    if args.json:
        print_json(rows)
        return ExitCode.OK
    head = ["name", "size", "files", "licence", "upstream", "used by"]
    table = [[r["name"], _mb(r["size_bytes"]), str(r["files"]),
              ("NON-COMMERCIAL: " if r["non_commercial"] else "") + r["licence"],
              f"{r['upstream']} @ {r['commit'][:10]}", ", ".join(r["used_by"]) or "-"] for r in rows]
    widths = [max(len(x[i]) for x in table + [head]) for i in range(len(head) - 1)]
    for line in [head] + table:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1])
    return ExitCode.OK


def _selected(args, default_all: bool):
    from deepqoe.datasets.catalog import catalog, resolve

    if getattr(args, "all", False) and args.names:
        raise UsageError("give dataset names or --all, not both")
    if getattr(args, "all", False) or (default_all and not args.names):
        return list(catalog().values())
    if not args.names:
        raise UsageError("name the datasets to fetch (see `deepqoe datasets list`) or give --all")
    return list({d.name: d for d in (resolve(n) for n in args.names)}.values())


def _fetch(args) -> int:
    from deepqoe.datasets.catalog import fetch_command
    from deepqoe.datasets.fetch import fetch_dataset

    chosen = _selected(args, default_all=False)
    nc = [d for d in chosen if d.non_commercial]
    if nc and not args.accept_non_commercial:
        raise UsageError(f"{', '.join(d.name for d in nc)}: licensed for non-commercial research only; read the "
                         f"licence (`deepqoe datasets list`) and re-run with --accept-non-commercial: "
                         f"`{fetch_command(chosen)}`")
    root = _root(args.to)
    root.mkdir(parents=True, exist_ok=True)
    results = []
    for d in chosen:
        status(args, f"{d.name} ({_mb(d.size)}, {len(d.files)} files) from {d.repo}; licence: {d.licence}")
        results.append(fetch_dataset(d, root, log=lambda s: status(args, s), timeout=args.timeout,
                                     progress=show_progress(args)))
    if args.json:
        print_json({"data_dir": str(root.absolute()), "datasets": [vars(r) for r in results]})
    else:
        print(root.absolute())
    env = os.environ.get("DEEPQOE_DATA")
    if args.to is not None and (not env or Path(env).expanduser().absolute() != root.absolute()):
        status(args, f"the loaders read DEEPQOE_DATA: export DEEPQOE_DATA={root.absolute()}")
    return ExitCode.OK


def _verify(args) -> int:
    from deepqoe.datasets.fetch import verify_dataset

    root = _root(args.to)
    chosen = _selected(args, default_all=True)
    results = [verify_dataset(d, root) for d in chosen]
    ok = all(r.passed for r in results)
    if args.json:
        print_json({"data_dir": str(root.absolute()), "ok": ok,
                    "datasets": [vars(r) | {"passed": r.passed} for r in results]})
    else:
        for r in results:
            print(f"{r.dataset}: {'ok' if r.passed else 'FAILED'} ({r.ok} file(s) ok, {len(r.missing)} missing, "
                  f"{len(r.bad)} different)")
            for p in r.missing:
                print(f"  missing   {p}")
            for p in r.bad:
                print(f"  different {p}")
    if not ok:
        print(f"verify: files missing or different under {root}; `deepqoe datasets fetch NAME` gets them again",
              file=sys.stderr)
    return ExitCode.OK if ok else ExitCode.DATA_ERROR
