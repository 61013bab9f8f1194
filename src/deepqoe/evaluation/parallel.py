"""The one way the experiments run independent tasks (splits, folds, dataset pairs) side by side.

:func:`run_parallel` calls ``fn(*task)`` for every task, in ``jobs`` worker processes (joblib's loky
backend) or in this process when ``jobs`` is 1 or there is a single task. Every task runs with one torch
thread (the data are small and the cores shared), so a result does not depend on ``jobs``. The CPU time
spent in worker processes is added up for the report (:func:`worker_cpu_seconds`).
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Sequence

_WORKER_CPU_SECONDS = [0.0]


def worker_cpu_seconds() -> float:
    """CPU seconds spent so far in worker processes (the calling process counts its own)."""
    return _WORKER_CPU_SECONDS[0]


@contextmanager
def one_torch_thread():
    """Run the block with one torch thread, restoring the previous count afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_parallel(fn: Callable, tasks: Sequence[tuple], jobs: int) -> list:
    """``[fn(*t) for t in tasks]``, in order, in ``jobs`` worker processes when ``jobs`` > 1."""
    tasks = list(tasks)
    if jobs <= 1 or len(tasks) <= 1:
        with one_torch_thread():
            return [fn(*t) for t in tasks]
    from joblib import Parallel, delayed

    out = Parallel(n_jobs=min(jobs, len(tasks)), backend="loky")(delayed(_in_worker)(fn, t) for t in tasks)
    _WORKER_CPU_SECONDS[0] += sum(cpu for _, cpu in out)
    return [r for r, _ in out]


def _in_worker(fn: Callable, task: tuple) -> tuple[Any, float]:
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    t = time.process_time()
    r = fn(*task)
    return r, time.process_time() - t
