"""Shared fixtures. Every test runs with the network blocked: only loopback connections work.

The whole suite (``pytest`` with no paths) runs on two pytest-xdist workers unless ``-n`` says
otherwise (``-n 0``: one process); each worker and what it starts (kernels, servers) then uses
one PyTorch thread, so two workers share two cores without oversubscribing them.
"""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class NetworkBlockedError(OSError):
    """Raised when a test tries to reach a host other than this machine."""


def _check_address(address: object) -> None:
    if isinstance(address, tuple) and address:
        host = str(address[0])
        try:
            if ipaddress.ip_address(host.split("%")[0]).is_loopback:
                return
        except ValueError:
            if host in ("localhost",):
                return
        raise NetworkBlockedError(f"tests must not use the network (tried to reach {address})")
    # AF_UNIX sockets (paths) are local


def _blocked_connect(self: socket.socket, address: object) -> None:
    _check_address(address)
    return _real_connect(self, address)


def _blocked_connect_ex(self: socket.socket, address: object) -> int:
    _check_address(address)
    return _real_connect_ex(self, address)


#: Workers for a whole-suite run; the machines this project targets have 2 cores.
SUITE_WORKERS = 2


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Run the whole suite on :data:`SUITE_WORKERS` xdist workers when ``-n`` is not given.

    Only for a run of the whole suite (its paths from ``testpaths``): a run of one file or
    test stays in one process, without the workers' start-up. ``--dist loadgroup`` keeps the
    tests of one ``xdist_group`` (the course's notebook runs) in one worker, in order.
    """
    if not config.pluginmanager.hasplugin("xdist") or config.getoption("numprocesses", None) is not None:
        return
    if hasattr(config, "workerinput") or "PYTEST_XDIST_WORKER" in os.environ:
        return  # a worker itself
    if config.args_source == pytest.Config.ArgsSource.TESTPATHS and not config.getoption("collectonly"):
        # what "-n 2 --dist loadgroup" sets (xdist's own hook may already have run)
        config.option.numprocesses = SUITE_WORKERS
        config.option.tx = ["popen"] * SUITE_WORKERS
        if config.getoption("dist", "no") == "no":
            config.option.dist = "loadgroup"
            # workers parse the command line afresh, which did not say --dist loadgroup, and
            # leave the group out of their test ids: pytest_collection_modifyitems puts it in
            os.environ[_GROUPED] = "1"


_GROUPED = "VIZWIDGETS_XDIST_LOADGROUP"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a worker of a grouped run, end each grouped test's id with ``@group``, the suffix by
    which the controller's loadgroup scheduler sends a group's tests to one worker.

    xdist does this itself only where the worker's own command line said ``--dist loadgroup``,
    and (xdist 3.8) by setting ``item._nodeid``, which pytest 9.2 no longer reads: it keeps the
    id as a ``NodeId`` in ``item._id``."""
    grouped = os.environ.get(_GROUPED) == "1" or bool(config.getoption("loadgroup", False))
    if not hasattr(config, "workerinput") or not grouped:
        return
    grouped_items = []
    for item in items:
        groups = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                         for mark in item.iter_markers("xdist_group")})
        if groups:
            grouped_items.append(item)
            if "@" not in item.nodeid:
                _set_node_id(item, f"{item.nodeid}@{'_'.join(groups)}")
    # the groups first (every worker collects the same order): the longest piece of work, the
    # course's notebook runs, starts at once, and the other worker and the rest balance it
    first = set(grouped_items)
    items[:] = grouped_items + [item for item in items if item not in first]


def _set_node_id(item: pytest.Item, nodeid: str) -> None:
    if hasattr(item, "_id"):  # pytest >= 9.2
        from _pytest.nodeid import coerce_node_id

        item._id = coerce_node_id(nodeid)
    else:
        item._nodeid = nodeid


#: Set to the suite's own cache folder by the outermost test session, for everything it starts
#: (xdist workers, notebook kernels, the learner run's pytest): they share one cache of trained
#: models (notebook 10's trainings, the shortcut study's), and never touch the user's own.
_SUITE_CACHE = "VIZWIDGETS_SUITE_CACHE"
_CACHE_KEY = pytest.StashKey[tuple[str, "str | None"]]()


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(_SUITE_CACHE):
        import tempfile

        folder = tempfile.mkdtemp(prefix="vizwidgets-suite-cache-")
        config.stash[_CACHE_KEY] = (folder, os.environ.get("VIZWIDGETS_CACHE"))
        os.environ["VIZWIDGETS_CACHE"] = os.environ[_SUITE_CACHE] = folder
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        # one thread per worker, inherited by the kernels and servers it starts
        os.environ["OMP_NUM_THREADS"] = "1"
        os.environ["MKL_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)
    socket.socket.connect = _blocked_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _blocked_connect_ex  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    if _CACHE_KEY in config.stash:
        import shutil

        folder, before = config.stash[_CACHE_KEY]
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(_SUITE_CACHE, None)
        if before is None:
            os.environ.pop("VIZWIDGETS_CACHE", None)
        else:
            os.environ["VIZWIDGETS_CACHE"] = before
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def lite():
    """The default model, loaded once for the whole run. Tests must not change it."""
    from vizwidgets.models import load_model

    return load_model()


@pytest.fixture()
def torch_home(tmp_path, monkeypatch):
    """An empty torch cache, so no test reads or writes the user's real one."""
    import torch

    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return home
