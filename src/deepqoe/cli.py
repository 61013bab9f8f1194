"""The ``deepqoe`` command. Thin: it parses arguments and calls the modules that do the work.

Sub-commands live in modules named ``cli*`` beside the code they drive; each has ``register(subparsers)``,
which adds its parser(s) with ``set_defaults(func=...)``; ``func(args)`` returns an :class:`ExitCode`.
Library code never imports these modules (the workflows they call are in :mod:`deepqoe.workflow`).

Conventions every command follows (tested in ``tests/test_cli_conventions.py``):

* data (tables, JSON, reports asked for) on standard output; everything else (status lines, progress,
  "written to ...", problems) on standard error, through :func:`status`; a progress bar only when standard
  error is a terminal (:func:`show_progress`);
* ``-q/--quiet`` (no status lines, no progress) and ``-v/--verbose`` (tracebacks for errors too) on every
  command, added here by :func:`build_parser`; ``--json`` wherever a command prints a result;
* the exit status is an :class:`ExitCode`: a :class:`~deepqoe.errors.DeepQoEError` is one line on standard
  error (no traceback unless ``--verbose``) with status 1, a :class:`UsageError` or an argparse error 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import sys
import traceback
from enum import IntEnum

from deepqoe import __version__
from deepqoe.errors import DeepQoEError, DeepQoENote


class ExitCode(IntEnum):
    """The exit status of every ``deepqoe`` command."""

    OK = 0            # everything asked for was done
    DATA_ERROR = 1    # a problem with an input, a model or the data (a DeepQoEError), nothing done
    USAGE = 2         # a wrong command line (argparse, or a bad option value)
    PARTIAL = 3       # done for some items, not all (sessions, files): the failures are on standard error
    INTERRUPTED = 130
    BROKEN_PIPE = 141  # standard output closed early (e.g. piped into head)


EXIT_CODES_HELP = """\
exit status:
  0  ok
  1  input or data error (a bad file, column, value, config or model; one line on standard error)
  2  usage error (unknown command or option, a bad option value, an option for another kind of model)
  3  partial success: some sessions or files failed, the others were done (predict, embed, extract,
     sessions convert/features/validate/compare); the failures are listed on standard error
  check-model exits 1 when the model violates a relation.

output: data (tables, JSON) goes to standard output; status lines, progress and "written to ..." go to
standard error (-q silences them; -v adds tracebacks to errors). A progress bar is drawn only when
standard error is a terminal.
"""


class UsageError(DeepQoEError):
    """A wrong command line found after parsing (a bad option value): one line, exit status 2."""

    exit_code = ExitCode.USAGE


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wraps one-line descriptions, keeps those written on several lines as they are, and appends
    ``(default: X)`` to each argument whose default is a value (not None or False) unless its help already
    says what the default is."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text.strip():
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if d is None or d is False or d is argparse.SUPPRESS or "default" in text.lower():
            return text
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text
        return text + " (default: %(default)s)"


def status(args, message: str) -> None:
    """A status line on standard error, unless ``--quiet``."""
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr, flush=True)


def show_progress(args) -> bool:
    """Whether to draw a progress bar: not ``--quiet`` and standard error is a terminal."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def print_json(obj) -> None:
    """A result as JSON on standard output (non-finite numbers as null)."""
    from deepqoe.io import to_json

    print(to_json(obj))


def finish_batch(failures: list, n_ok: int, *, verb: str = "read", file: str | None = None) -> ExitCode:
    """The end of a batch of sessions or files: list the failures on standard error (even with
    ``--quiet``); :attr:`ExitCode.PARTIAL` when some failed, a DeepQoEError when nothing succeeded."""
    if failures:
        print(f"{len(failures)} session(s) or file(s) could not be {verb}:", file=sys.stderr)
        for e in failures:
            print(f"  - {e}", file=sys.stderr)
    if n_ok == 0:
        raise DeepQoEError(f"no session could be {verb}" + (f" ({len(failures)} failure(s) above)" if failures
                                                            else ""), file=None if file is None else str(file))
    return ExitCode.PARTIAL if failures else ExitCode.OK


@contextlib.contextmanager
def stdout_to_stderr(args):
    """Send what library code prints to standard error (to nowhere with ``--quiet``)."""
    target = io.StringIO() if getattr(args, "quiet", False) else sys.stderr
    with contextlib.redirect_stdout(target):
        yield


# Modules that add sub-commands, in the order they appear in --help.
COMMAND_MODULES = (
    "deepqoe.cli_models",              # train, evaluate, predict, embed, models, export, finetune
    "deepqoe.experiments.cli",         # reproduce
    "deepqoe.features.video.cli",      # extract, convert-c3d-weights
    "deepqoe.sessions.cli",            # sessions (convert / features / validate)
    "deepqoe.cli_service",             # demo, serve
    "deepqoe.datasets.cli",            # datasets (list / fetch / verify)
    "deepqoe.cli_viewers",             # adapt-viewer
)


def _check_model(args) -> int:
    from deepqoe.evaluation.behaviour import main_check_model

    # its notes and progress lines go to standard error; --quiet drops them (errors still reach main)
    with contextlib.redirect_stderr(io.StringIO()) if args.quiet else contextlib.nullcontext():
        ok = main_check_model(args) == 0
    return ExitCode.OK if ok else ExitCode.DATA_ERROR


def _register_check_model(sub) -> None:
    p = sub.add_parser("check-model", help="check that a session model behaves like QoE (table of relations)",
                       description="Check a session model on random perturbed sessions (more stalls, a later "
                                   "start, more switches, lower quality must not raise the score, ...). Exit 0 "
                                   "if nothing is violated, 1 otherwise.")
    p.add_argument("model", help="a model directory or a shipped model's name (e.g. streaming)")
    p.add_argument("--n-sessions", type=int, default=1000, help="random sessions to perturb")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--json", action="store_true", help="the report as JSON on standard output")
    p.set_defaults(func=_check_model)


def _add_common_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output options").add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true",
                   help="no status lines and no progress bar on standard error (errors still show)")
    g.add_argument("-v", "--verbose", action="store_true", help="show a traceback with every error")


def subparsers_of(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of ``parser``'s sub-commands (one per command, aliases folded)."""
    found: list[argparse.ArgumentParser] = []
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            found += [p for p in dict.fromkeys(a.choices.values())]
    return found


def _finish(parser: argparse.ArgumentParser) -> None:
    """One help format everywhere; -q/-v on every command that runs something."""
    parser.formatter_class = HelpFormatter
    children = subparsers_of(parser)
    if not children and parser.prog != "deepqoe":
        _add_common_options(parser)
    elif children and parser.get_default("func") is None:
        parser.set_defaults(func=lambda args, p=parser: _usage(p))
    for child in children:
        _finish(child)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return ExitCode.USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepqoe", description="Predict video Quality of Experience (QoE) with DeepQoE models.",
        epilog=EXIT_CODES_HELP + "\nRun 'deepqoe COMMAND --help' for the options of a command.",
        formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"deepqoe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:  # a part not built (or an optional dependency missing)
            if e.name and (e.name == name or name.startswith(e.name + ".") or e.name.startswith(name)):
                continue
            raise
        mod.register(sub)
    _register_check_model(sub)
    _finish(parser)
    return parser


@contextlib.contextmanager
def _notes_as_status(args):
    """Notes on the user's input (:class:`~deepqoe.errors.DeepQoENote` warnings) as one status line each
    (``deepqoe: note: ...``, hidden by ``-q``), each distinct note once (a folder of 300 files that each raise
    the same note: one line); other warnings as Python shows them."""
    import warnings

    said: set[str] = set()
    with warnings.catch_warnings():
        show = warnings.showwarning

        def _show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, DeepQoENote):
                if str(message) not in said:
                    said.add(str(message))
                    status(args, f"deepqoe: note: {message}")
            else:
                show(message, category, filename, lineno, file, line)

        warnings.showwarning = _show
        yield


def _quiet_loading_bars(args):
    """``-q`` also hides the text encoders' model-loading bars (imported only then: the text module's package
    pulls in torch, which light commands never need)."""
    if not getattr(args, "quiet", False):
        return contextlib.nullcontext()
    from deepqoe.features.text import progress_bars
    return progress_bars(False)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        return _usage(parser)
    try:
        with _notes_as_status(args), _quiet_loading_bars(args):
            return int(args.func(args) or ExitCode.OK)
    except DeepQoEError as e:
        if getattr(args, "verbose", False):
            traceback.print_exc()
        print(f"deepqoe: error: {e}", file=sys.stderr)
        return int(getattr(e, "exit_code", ExitCode.DATA_ERROR))
    except KeyboardInterrupt:
        print("deepqoe: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # the reader went away: no traceback, and none at exit when flushing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.BROKEN_PIPE
    except OSError as e:  # the system refused a file (a folder where a file goes, no space, no permission)
        if getattr(args, "verbose", False):
            traceback.print_exc()
        where = f"file '{e.filename}': " if e.filename else ""
        print(f"deepqoe: error: {where}{e.strerror or e}", file=sys.stderr)
        return ExitCode.DATA_ERROR


if __name__ == "__main__":
    from deepqoe.cli import main as _main  # the module itself, not a second copy named __main__

    sys.exit(_main())
