"""Helpers shared by the benchmark scripts (run as ``python bench/<name>.py``: this folder is on the path)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

HOST = "127.0.0.1"  # loopback only


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def machine() -> str:
    """The CPU model name (lscpu), for the benchmark records."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def run_clients(worker: Callable[[int], None], clients: int) -> tuple[float, float, float]:
    """Run ``worker(k)`` for k = 0 .. clients-1 in threads at once, wait for all: ``(wall seconds, load
    average before, load average after)``."""
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - start, load_before, os.getloadavg()[0]


@contextmanager
def served(model: str, env: dict, start_timeout: float = 120.0) -> Iterator[tuple[str, subprocess.Popen, float]]:
    """A ``deepqoe serve MODEL`` process on a free loopback port, up and healthy: (url, process, seconds it
    took to start); terminated on exit."""
    import httpx

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "deepqoe.cli", "serve", model, "--host", HOST, "--port",
                             str(port), "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://{HOST}:{port}"
    try:
        t0 = time.time()
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited: {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() - t0 > start_timeout:
                raise SystemExit(f"the server did not start within {start_timeout:.0f} s")
            time.sleep(0.2)
        yield url, proc, time.time() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
