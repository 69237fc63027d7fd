"""Shared fixtures: a CCS simulator running on a free loopback port, for tests that need one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from batch_updater.sim import Simulator

# One seed for every simulator the tests start, so that injected faults repeat run after run.
SIMULATOR_SEED = 20240531


def pytest_configure(config: pytest.Config) -> None:
    """Give the commands the tests start the signal dispositions a terminal would.

    A suite started in the background by a script (`pytest &` without job control, some CI
    runners) inherits SIGINT and SIGQUIT ignored, and every command it starts would inherit that
    too: Ctrl-C tests would then wait forever. Signals a process catches are reset to their
    default when it starts a program; ignored ones stay ignored, so catch them here.
    """
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in ("SIGQUIT", "SIGHUP", "SIGTERM"):
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) == signal.SIG_IGN:
            signal.signal(signum, lambda *_: None)  # caught: the commands get the default


@pytest.fixture(autouse=True)
def state_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """The per-user state folder (journals, run locks) of every test: a fresh tmp folder, never
    the real one. Set through the environment (BATCH_UPDATE_STATE_DIR), so that the commands a
    test starts use it too."""
    from batch_updater.settings import STATE_DIR_VARIABLE, user_state_folder

    base = tmp_path_factory.mktemp("state")
    monkeypatch.setenv(STATE_DIR_VARIABLE, str(base / "batch-update"))
    monkeypatch.setenv("XDG_STATE_HOME", str(base))  # and platformdirs' own, on Linux
    folder = user_state_folder()
    assert folder == base / "batch-update", folder
    return folder


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """A default simulator (1000 tickets, the demo accounts, no faults), closed after the test.

    Change its behaviour during a test with `simulator.configure(...)`.
    """
    with Simulator(port=0, seed=SIMULATOR_SEED) as sim:
        yield sim


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., Simulator]]:
    """A factory for simulators with other constructor arguments (seed file, TLS, users...).

    Every simulator it makes is closed after the test.
    """
    made: list[Simulator] = []

    def make(**kwargs: Any) -> Simulator:
        kwargs.setdefault("port", 0)
        kwargs.setdefault("seed", SIMULATOR_SEED)
        sim = Simulator(**kwargs)
        made.append(sim)
        return sim

    yield make
    for sim in made:
        sim.close()
