"""Sub-commands that run the shipped models for people: ``demo`` and ``serve``.

* ``deepqoe demo [--out DIR]``: predictions of the shipped models on built-in viewer rows and streaming
  sessions, with explanations and per-second QoE curves, in ``DIR/report.html`` (plus a quick real-data
  run when ``DEEPQOE_DATA`` is set). Needs no dataset and no network.
* ``deepqoe serve [MODEL] [--host H] [--port P]``: the HTTP prediction service (:mod:`deepqoe.serve`).
"""

from __future__ import annotations

import argparse

from deepqoe.cli import ExitCode, stdout_to_stderr
from deepqoe.errors import DeepQoEError


def _int_from(low: int, high: int | None = None):
    """An argparse type: an integer from ``low`` (to ``high``); anything else is a usage error (exit 2)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or v < low or (high is not None and v > high):
            want = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise argparse.ArgumentTypeError(f"expected an integer {want}, got '{text}'")
        return v
    return parse


def _cmd_serve(args) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ModuleNotFoundError:
        raise DeepQoEError("the service needs FastAPI and uvicorn: pip install 'deepqoe[serve]'") from None
    from deepqoe.serve import run_server

    # the service's startup line and logs are status, not data: standard error (-q: warnings only)
    log_level = "warning" if args.quiet and args.log_level == "info" else args.log_level
    with stdout_to_stderr(args):
        run_server(args.model_dir, host=args.host, port=args.port, max_body_bytes=args.max_body,
                   max_items=args.max_items, explain_default=args.explain, access_log=args.access_log,
                   log_level=log_level, device=args.device)
    return ExitCode.OK


def _cmd_demo(args) -> int:
    from deepqoe.demo import run_demo

    # the demo's tables and progress are for a person watching: standard error (the report is the result)
    with stdout_to_stderr(args):
        run_demo(args.out, with_data=not args.no_data, quiet=args.quiet)
    return ExitCode.OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="predict with the shipped models on built-in examples; write an HTML report")
    p.add_argument("--out", default="deepqoe-demo", help="report folder")
    p.add_argument("--no-data", action="store_true", help="skip the real-data part even when DEEPQOE_DATA is set")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("serve", help="serve a model over HTTP (FastAPI): POST /predict, GET /health, GET /model")
    p.add_argument("model_dir", nargs="?", default=None,
                   help="model directory or shipped model name (default: the shipped streaming model, "
                        "else upec-qoe-lab)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=_int_from(0, 65535), default=8000, help="TCP port to listen on (0: any free one)")
    p.add_argument("--explain", action="store_true", help="explain every prediction unless ?explain=false")
    p.add_argument("--max-body", type=_int_from(1), default=2_000_000, help="largest request body in bytes (else 413)")
    p.add_argument("--max-items", type=_int_from(1), default=1000, help="most rows / sessions per request (else 413)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="the server's log level (-q: warning)")
    from deepqoe.devices import add_device_argument

    add_device_argument(p, "the model (a DeepQoE network; a session model always runs on the CPU)")
    p.set_defaults(func=_cmd_serve)
