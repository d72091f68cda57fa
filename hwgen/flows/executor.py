"""Where the synthesis and energy jobs of ``make report`` and ``hwgen synth`` run.

:func:`get` turns the ``--executor`` option into an executor:

- ``local`` (the default): this machine, ``workers`` processes (one: in this process).
- ``dask://HOST:PORT``: the workers of a Dask distributed cluster whose scheduler listens at
  ``tcp://HOST:PORT`` (``dask scheduler`` on one machine, ``dask worker tcp://HOST:PORT`` on
  each of the others, every worker with hwgen and its YoWASP tools installed).

An executor runs a job function on keyword-argument sets and yields ``(position, result)``
as results arrive. It gives every call its own ``cache_dir``: the caller's for local
processes, the worker's own for a cluster (:attr:`DaskExecutor.worker_cache`; by default the
``build/report-cache/`` of the hwgen checkout each worker runs), so a worker never needs the
caller's folders. :func:`hwgen.flows.report.collect` keeps the caller's cache the one that
counts: configurations it holds are not sent, results that come back are stored in it.
"""

from __future__ import annotations

import concurrent.futures as futures
from collections.abc import Callable, Iterator, Mapping

__all__ = ["DaskExecutor", "LocalExecutor", "get"]


class LocalExecutor:
    """Jobs in ``workers`` processes of this machine (one: in this process, in order).

    Parameters
    ----------
    workers : int
        Number of processes.
    """

    remote = False

    def __init__(self, workers: int = 2):
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"--jobs must be at least 1, not {workers!r}")
        self.workers = workers

    def describe(self) -> str:
        return f"{self.workers} local process{'es' if self.workers > 1 else ''}"

    def call_everywhere(self, fn: Callable[[], object]) -> list:
        """``fn()`` where the jobs run: here."""
        return [fn()]

    def map(
        self, fn: Callable, calls: list[Mapping], cache_dir: str
    ) -> Iterator[tuple[int, object]]:
        """``(n, fn(**calls[n], cache_dir=cache_dir))`` in the order the jobs finish."""
        if self.workers == 1:
            for n, call in enumerate(calls):
                yield n, fn(**call, cache_dir=cache_dir)
            return
        with futures.ProcessPoolExecutor(max_workers=self.workers) as pool:
            pending = {
                pool.submit(fn, **call, cache_dir=cache_dir): n for n, call in enumerate(calls)
            }
            for fut in futures.as_completed(pending):
                yield pending[fut], fut.result()

    def close(self) -> None:
        pass


class DaskExecutor:
    """Jobs on the workers of a Dask distributed cluster.

    Parameters
    ----------
    address : str
        The scheduler, e.g. ``tcp://10.0.0.5:8786``.
    worker_cache : str or None
        The cache folder the jobs use on the workers; None: each worker's own
        ``build/report-cache/`` (of the hwgen checkout it imports).
    timeout_s : float
        How long to try to reach the scheduler.
    """

    remote = True

    def __init__(self, address: str, worker_cache: str | None = None, timeout_s: float = 20.0):
        try:
            from distributed import Client
        except ImportError:
            raise RuntimeError(
                "--executor dask:// needs Dask: pip install 'hwgen[cluster]' (dask and distributed)"
            ) from None
        self.address = address
        self.worker_cache = worker_cache
        try:
            self.client = Client(address, timeout=f"{timeout_s}s")
        except OSError as exc:  # unreachable scheduler: distributed raises OSError (TimeoutError)
            raise RuntimeError(
                f"no Dask scheduler answers at {address} ({type(exc).__name__}); start one with "
                "`dask scheduler` and workers with `dask worker ADDRESS`"
            ) from None
        if not self.client.scheduler_info().get("workers"):
            self.client.wait_for_workers(1, timeout=timeout_s)

    def describe(self) -> str:
        n = len(self.client.scheduler_info().get("workers", {}))
        return f"Dask cluster {self.address} ({n} worker{'s' if n != 1 else ''})"

    def call_everywhere(self, fn: Callable[[], object]) -> list:
        """``fn()`` on every worker (e.g. the tool versions it has)."""
        return list(self.client.run(fn).values())

    def map(
        self, fn: Callable, calls: list[Mapping], cache_dir: str
    ) -> Iterator[tuple[int, object]]:
        """``(n, fn(**calls[n], cache_dir=<the worker's>))`` in the order the jobs finish;
        ``cache_dir``, the caller's, is not used on the workers."""
        from distributed import as_completed

        pending = {}
        for n, call in enumerate(calls):
            # pure=False: every call runs, even one equal to an earlier call of this client
            fut = self.client.submit(fn, **call, cache_dir=self.worker_cache, pure=False)
            pending[fut] = n
        for fut in as_completed(pending):
            yield pending[fut], fut.result()

    def close(self) -> None:
        self.client.close()


def get(spec: str | None, workers: int = 2):
    """The executor that ``--executor SPEC`` names (``local`` or ``dask://HOST:PORT``)."""
    if spec in (None, "", "local"):
        return LocalExecutor(workers)
    scheme, sep, rest = spec.partition("://")
    if scheme == "dask" and sep:
        host, colon, port = rest.rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError(
                f"--executor dask:// needs HOST:PORT, e.g. dask://10.0.0.5:8786, not {spec!r}"
            )
        return DaskExecutor(f"tcp://{host}:{port}")
    raise ValueError(f"--executor must be local or dask://HOST:PORT, not {spec!r}")
