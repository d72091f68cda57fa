"""hwgen.flows.executor: the report's jobs on local processes and on a Dask cluster."""

from __future__ import annotations

import pytest

from hwgen import registry
from hwgen.flows import executor, report


def _jobs():
    """Two cheap jobs: the error statistics of two GELU configurations (no tools)."""
    op = registry.get("gelu")
    return [(report.Config("gelu", op.params(segments=k), "sweep"), ("errors",)) for k in (4, 8)]


def test_executor_spec_errors():
    assert isinstance(executor.get("local", 2), executor.LocalExecutor)
    with pytest.raises(ValueError, match=r"--executor must be local or dask://HOST:PORT, not 'ssh"):
        executor.get("ssh://box", 2)
    with pytest.raises(ValueError, match=r"--executor dask:// needs HOST:PORT, e\.g\."):
        executor.get("dask://box", 2)
    with pytest.raises(ValueError, match=r"--jobs must be at least 1, not 0"):
        executor.get("local", 0)


def test_an_unreachable_scheduler_is_one_line():
    pytest.importorskip("distributed")
    with pytest.raises(RuntimeError, match=r"^no Dask scheduler answers at tcp://127.0.0.1:9 \("):
        executor.DaskExecutor("tcp://127.0.0.1:9", timeout_s=1.0)


def test_dask_cluster_runs_the_sweep_and_fills_the_local_cache(tmp_path):
    """A local Dask cluster of two worker processes computes what the local cache lacks;
    the results equal local processes' and land in the local cache, so a second run sends
    nothing."""
    distributed = pytest.importorskip("distributed")
    local = report.collect(_jobs(), cache_dir=tmp_path / "local", workers=1, progress=print)
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        worker_dashboard_address=":0",
    ) as cluster:
        dask = executor.DaskExecutor(cluster.scheduler_address, str(tmp_path / "worker"))
        try:
            assert dask.describe().endswith("(2 workers)")
            first = report.collect(_jobs(), cache_dir=tmp_path / "mine", executor=dask)
            # both computed on the workers, in their cache, then stored in mine
            assert [r["cached"] for r in first] == [[], []]
            assert len(list((tmp_path / "worker" / "errors").glob("*.json"))) == 2
            assert len(list((tmp_path / "mine" / "errors").glob("*.json"))) == 2
            for a, b in zip(first, local, strict=True):
                assert a["name"] == b["name"] and a["units"] == b["units"]
            # finished configurations are not sent again: the workers' cache is emptied and
            # the second run is served from mine alone
            for path in (tmp_path / "worker" / "errors").glob("*.json"):
                path.unlink()
            second = report.collect(_jobs(), cache_dir=tmp_path / "mine", executor=dask)
            assert [r["cached"] for r in second] == [["errors"], ["errors"]]
            assert not list((tmp_path / "worker" / "errors").glob("*.json"))
            assert [r["units"] for r in second] == [r["units"] for r in local]
        finally:
            dask.close()
