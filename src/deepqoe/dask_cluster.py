"""The one way deepqoe starts or joins a Dask cluster (``--scheduler local | tcp://host:port``).

    client, cluster, torch_threads = dask_client("local", workers=2)   # a LocalCluster in this machine
    client, cluster, torch_threads = dask_client("tcp://10.0.0.5:8786")  # an existing cluster (cluster None)

Used by ``deepqoe extract`` (:mod:`deepqoe.features.video.pipeline`) and ``deepqoe predict --scheduler``
(:mod:`deepqoe.batch_scoring`). Close both when done: ``client.close()`` then ``cluster.close()`` when
``cluster`` is not None. ``torch_threads`` is the number of torch threads each local worker may use
(the cores shared out), None for a remote cluster.
"""

from __future__ import annotations

import logging
import os

from deepqoe.errors import DeepQoEError


def dask_client(scheduler: str, workers: int | None = None, processes: bool = True, timeout: str = "15s"):
    """``(client, cluster, torch_threads)`` for ``"local"`` (a LocalCluster of ``workers`` workers, one
    thread each; default one per core) or a scheduler address; a one-line DeepQoEError when Dask is not
    installed, the name is neither, or the scheduler cannot be reached within ``timeout``."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise DeepQoEError("--scheduler needs Dask distributed: pip install 'deepqoe[video]'") from None
    if workers is not None and workers < 1:
        raise DeepQoEError(f"--workers must be at least 1, got {workers}", field="workers")
    if scheduler == "local":
        n = workers or (os.cpu_count() or 1)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                               dashboard_address=None, silence_logs=logging.ERROR)
        return Client(cluster), cluster, max(1, (os.cpu_count() or 1) // n)
    if not (scheduler.startswith("tcp://") or scheduler.startswith("tls://") or ":" in scheduler):
        raise DeepQoEError(f"unknown scheduler '{scheduler}': use 'local' or the address of a Dask scheduler "
                           "(tcp://host:port)", field="scheduler")
    try:
        client = Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as e:
        why = str(e).splitlines()[0] if str(e).strip() else type(e).__name__
        raise DeepQoEError(f"cannot reach the Dask scheduler at {scheduler}: {why}") from None
    return client, None, None
