"""``deepqoe extract``: a feature table (Parquet, one row per video) from video files.

Also ``deepqoe convert-c3d-weights``: turn the published C3D torch checkpoint into safetensors.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from deepqoe.cli import ExitCode, UsageError, show_progress, status
from deepqoe.errors import DeepQoEError

EPILOG = """\
examples:
  deepqoe extract videos/ --out features.parquet
  deepqoe extract videos/ --out features.parquet --extractors cnn-frames,siti,stream --fps 2
  deepqoe extract distorted/ --reference-dir originals/ --extractors full-reference --out fr.parquet
  deepqoe extract list.csv --out f.parquet --scheduler local --workers 2

INPUT: video files, folders (searched recursively for video files) or lists: a .txt file with one path
a line, or a CSV with a 'path' column and optional 'id' and 'reference' columns.
Outputs: OUT (id + features), OUT.errors.csv (id, path, extractor, error), OUT.meta.json (extractors,
versions, options; also stored in the Parquet schema metadata under 'deepqoe').
A video on which some extractors failed keeps its row, the failed extractors' columns empty; a video
on which every extractor failed has no row.
Exit status: 0 when every video succeeded, 3 when some failed (listed on standard error and in
OUT.errors.csv), 1 when all failed (no extractor succeeded on any video; listed on standard error;
nothing is written then, an existing OUT is left as it was) or for a bad input file (with --strict: 1
when any failed), 2 for a usage problem.
"""


def _at_least(minimum: int, kind: type = float):
    """An argparse type: a number of ``kind`` (float or int) no smaller than ``minimum``."""
    what = "a whole number" if kind is int else "a number"

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if not math.isfinite(v):  # NaN passes every comparison; an infinite rate samples nothing
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {text}")
        return v

    return parse


_positive_float = _at_least(0, float)  # 0 or more
_positive_int = _at_least(1, int)      # 1 or more


def register(subparsers) -> None:
    from deepqoe.features.video.base import DEFAULT_EXTRACTORS, EXTRACTORS

    p = subparsers.add_parser(
        "extract", help="video features (CNN, C3D, SI/TI, stream, PSNR/SSIM/VMAF, NIQE) -> a feature table",
        description="Extract features from video files into a Parquet table (one row per video, joined "
                    "to a dataset by id as a 'vector' input).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, folders, or .txt/.csv lists")
    p.add_argument("--out", "-o", required=True, metavar="FEATURES.parquet", help="the feature table to write")
    p.add_argument("--extractors", "-e", default=",".join(DEFAULT_EXTRACTORS),
                   help=f"comma-separated, from: {', '.join(EXTRACTORS)} (default: %(default)s)")
    p.add_argument("--fps", type=_positive_float, default=None,
                   help="frames sampled per second for cnn-frames, siti and niqe (defaults: 2, 2, 1; "
                        "siti and niqe with 0: every frame)")
    ref = p.add_mutually_exclusive_group()
    ref.add_argument("--reference-dir", metavar="DIR",
                     help="full-reference: the reference of video X is the video named X.* in DIR")
    ref.add_argument("--reference-map", metavar="CSV",
                     help="full-reference: a CSV with columns id (or path) and reference")
    p.add_argument("--vmaf-model", default=None, metavar="MODEL",
                   help="libvmaf model: a built-in one (version=vmaf_v0.6.1neg, or just its name) or a model "
                        "file (path=FILE.json) (default: the built-in version=vmaf_v0.6.1)")
    p.add_argument("--c3d-weights", metavar="FILE", help="C3D weights (safetensors; see convert-c3d-weights)")
    p.add_argument("--c3d-max-clips", type=_positive_int, default=None, metavar="N",
                   help="C3D: at most N clips of 16 frames per video (default 8)")
    p.add_argument("--cache", metavar="DIR", help="feature cache folder (default ~/.cache/deepqoe/features)")
    p.add_argument("--no-cache", action="store_true", help="compute everything, read and write no cache")
    p.add_argument("--scheduler", metavar="local|tcp://HOST:PORT",
                   help="run on Dask: 'local' (a cluster on this machine) or a scheduler address")
    p.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help="workers of the local Dask cluster (default: one per core)")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="threads of FFmpeg/libvmaf for full-reference (default: all cores)")
    from deepqoe.devices import add_device_argument

    add_device_argument(p, "the cnn-frames and c3d networks")
    p.add_argument("--per-frame", action="store_true",
                   help="also write OUT.frames.parquet (per-frame SI/TI, PSNR, SSIM, VMAF, NIQE)")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 1 if any video failed (instead of 3, partial success)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none either when standard error is not a terminal)")
    p.set_defaults(func=run_extract)

    c = subparsers.add_parser(
        "convert-c3d-weights", help="convert a C3D torch checkpoint (c3d.pickle) to safetensors",
        description="Read a C3D checkpoint with torch.load(weights_only=True) (tensors only, no code run), "
                    "check its layer names and shapes, and write safetensors for --c3d-weights.")
    c.add_argument("source", metavar="c3d.pickle", help="the published C3D torch checkpoint")
    c.add_argument("dest", metavar="c3d.safetensors", help="the safetensors file to write")
    c.set_defaults(func=run_convert_c3d)


# names people try for what an extractor computes: a did-you-mean for each
EXTRACTOR_ALIASES = {"vmaf": "full-reference", "psnr": "full-reference", "ssim": "full-reference",
                     "ms-ssim": "full-reference", "fr": "full-reference", "si": "siti", "ti": "siti",
                     "cnn": "cnn-frames", "resnet": "cnn-frames", "bitrate": "stream", "codec": "stream"}


def _extractor_names(text: str) -> list[str]:
    """The names of ``--extractors``; an unknown one is a usage error with a did-you-mean."""
    import difflib

    from deepqoe.features.video.base import EXTRACTORS, parse_extractor_list

    for name in (t.strip() for t in str(text).split(",")):
        if name and name not in EXTRACTORS:
            close = EXTRACTOR_ALIASES.get(name.lower()) or next(iter(difflib.get_close_matches(name, EXTRACTORS, 1)),
                                                                None)
            raise UsageError(f"unknown extractor '{name}'" + (f" (did you mean '{close}'?)" if close else "")
                             + f"; known: {', '.join(EXTRACTORS)}", field="extractors")
    try:
        return parse_extractor_list(text)
    except DeepQoEError as e:  # e.g. no name at all
        raise UsageError(e.message, field="extractors") from None


def extract_options(args) -> dict:
    opts = {"fps": args.fps, "weights": args.c3d_weights, "max_clips": args.c3d_max_clips,
            "model": args.vmaf_model, "threads": args.threads, "device": getattr(args, "device", None)}
    return {k: v for k, v in opts.items() if v is not None}


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def _check_outputs_spare_inputs(args, outputs: dict[str, Path]) -> None:
    """No output may replace an input: the video list, the reference map, the C3D weights."""
    given = [(Path(i).expanduser(), "the input list" if Path(i).suffix.lower() in (".txt", ".csv", ".tsv", ".lst")
              else "an input") for i in args.inputs]
    if args.reference_map:
        given.append((Path(args.reference_map).expanduser(), "the --reference-map file"))
    if args.c3d_weights:
        given.append((Path(args.c3d_weights).expanduser(), "the --c3d-weights file"))
    for src, what in given:
        if not src.is_file():
            continue
        for kind, q in outputs.items():
            if _same_file(src, q):
                which = "--out" if kind == "features" else f"--out's {kind} file {q}"
                raise UsageError(f"{which} would replace {what} '{src}': give another --out", field="--out")


def _check_outputs_writable(outputs: dict[str, Path]) -> None:
    """Before any work: each output (the table and its side files) can be written, so that a run is not
    lost at the end (the files themselves are written all together, see write_outputs)."""
    from deepqoe.io import write_blocker

    for kind, q in outputs.items():
        if q.is_dir():
            what = "--out" if kind == "features" else f"the {kind} file of --out"
            raise UsageError(f"is a folder, so {what} cannot be written there: give another --out, or move the "
                             "folder", file=str(q))
        why = write_blocker(q)
        if why:
            raise DeepQoEError(f"cannot write this file: {why}", file=str(q))


def _check_cache_option(args) -> None:
    if args.no_cache or not args.cache:
        return
    c = Path(args.cache).expanduser()
    if c.exists() and not c.is_dir():
        raise UsageError(f"'{c}' is a file, not a folder: --cache takes the feature cache folder", field="--cache")


def run_extract(args) -> int:
    from deepqoe.features.video.cache import default_cache_dir
    from deepqoe.features.video.pipeline import collect_inputs, extract_features, output_paths, sidecar_paths, \
        write_outputs

    out = Path(args.out)
    if out.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise UsageError("the output must end in .parquet (or .csv)", field="--out")
    if out.exists() and out.is_dir():
        raise UsageError("is a folder; give a file name such as features.parquet", file=str(out))
    names = _extractor_names(args.extractors)
    if "c3d" in names and not args.c3d_weights:
        raise UsageError("the c3d extractor needs C3D weights: give --c3d-weights FILE (none ship with deepqoe; "
                         "convert the published c3d.pickle with: deepqoe convert-c3d-weights c3d.pickle "
                         "c3d.safetensors)")
    if "full-reference" in names and not (args.reference_dir or args.reference_map) and not any(
            Path(i).suffix.lower() == ".csv" for i in args.inputs):
        raise UsageError("the full-reference extractor needs the reference videos: give --reference-dir DIR "
                           "or --reference-map CSV (or a CSV list with a 'reference' column)")
    if args.fps == 0 and "cnn-frames" in names:
        raise UsageError("cnn-frames needs a sampling rate above 0 (--fps 0, every frame, is for siti and niqe)",
                         field="--fps")
    if args.vmaf_model is not None and "full-reference" in names:
        from deepqoe.features.video.full_reference import check_vmaf_model

        try:
            args.vmaf_model = check_vmaf_model(args.vmaf_model)
        except DeepQoEError as e:
            if e.field != "vmaf-model":  # a model file that is not there: a data error, as any missing file
                raise
            raise UsageError(e.message, field="--vmaf-model") from None
    _check_cache_option(args)
    _check_outputs_spare_inputs(args, output_paths(out, per_frame=True))
    _check_outputs_writable(output_paths(out, per_frame=args.per_frame))
    items = collect_inputs(args.inputs, reference_dir=args.reference_dir, reference_map=args.reference_map)
    if not items:
        raise DeepQoEError("no videos to extract features from in the inputs given")
    cache_dir = None if args.no_cache else (args.cache or default_cache_dir())
    run = extract_features(items, names, options=extract_options(args), cache_dir=cache_dir,
                           scheduler=args.scheduler, workers=args.workers,
                           progress=not args.no_progress and show_progress(args))
    n, bad, part = len(run.order), len(run.failed_ids), len(run.partial_ids)
    if run.outcome == "failed":  # nothing to write: an earlier table (and its side files) is left alone
        print(f"deepqoe extract: every video failed ({bad} of {n}):", file=sys.stderr)
        _say_failures(run, None)
        raise DeepQoEError(f"no video could be processed, so nothing was written ({out} and its side files are "
                           "left as they were)")
    written = write_outputs(run, out, per_frame=args.per_frame)
    in_part = f", {part} more in part" if part else ""
    status(args, f"deepqoe extract: {n - bad} of {n} video(s) done{in_part} ({run.computed} computed, "
                 f"{run.cached} from the cache) in {run.seconds:.1f} s -> {written['features']}")
    frames = sidecar_paths(out)["frames"]
    if not args.per_frame and frames.exists():
        status(args, f"deepqoe: note: {frames} is from an earlier run with --per-frame and is left as it "
                     f"was: it does not describe the new {out.name} (remove it, or run again with --per-frame)")
    if bad:
        which = (f" ({part} of them in part: in the table, with the columns of the extractors that failed "
                 "empty)") if part else ""
        print(f"deepqoe extract: {bad} video(s) failed{which}, see {written['errors']}", file=sys.stderr)
        _say_failures(run, 5)
    if bad and args.strict:
        return ExitCode.DATA_ERROR
    return ExitCode.PARTIAL if run.outcome == "partial" else ExitCode.OK


def _say_failures(run, videos: int | None) -> None:
    """One line per failed video and distinct error on stderr: ``ID: EXTRACTORS: ERROR (FILE)``, every
    extractor that failed with that error (as the errors table lists them) and the file as given; the first
    ``videos`` videos (None: all)."""
    table = run.errors_table()
    ids = list(dict.fromkeys(table["id"]))
    shown = ids if videos is None else ids[:videos]
    for r in table[table["id"].isin(shown)].itertuples():
        print(f"  {r.id}: {r.extractor}: {r.error} ({r.path})", file=sys.stderr)
    if len(ids) > len(shown):
        print(f"  ... and {len(ids) - len(shown)} more", file=sys.stderr)


def run_convert_c3d(args) -> int:
    from deepqoe.features.video.c3d import check_destination, convert_c3d_checkpoint

    try:  # a destination that is the source, or not a .safetensors name: a wrong command line
        check_destination(args.source, args.dest)
    except DeepQoEError as e:
        raise UsageError(e.message, file=e.file) from None
    shapes = convert_c3d_checkpoint(args.source, args.dest)
    status(args, f"deepqoe: wrote {len(shapes)} C3D tensors to {args.dest}")
    return ExitCode.OK
