"""Shared fixtures: the emulators as real processes (one per session), reset before every test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from emulators import RunningProcess, start
from emulators.control import BatchEmulator, IdentityEndpoint


@dataclass(frozen=True)
class BatchHandle:
    """A running Batch emulator: ``url`` is its endpoint (what ``BATCH_ENDPOINT`` would be)."""

    url: str
    control: BatchEmulator
    process: RunningProcess


@dataclass(frozen=True)
class IdentityHandle:
    """A running identity endpoint: ``url`` is the token URL (``IDENTITY_ENDPOINT``)."""

    url: str
    secret: str
    control: IdentityEndpoint
    process: RunningProcess


def _check_alive(process: RunningProcess) -> None:
    if process.process.poll() is not None:
        pytest.fail(f"emulator exited ({process.process.returncode}):\n{process.stderr_tail()}")


@pytest.fixture(scope="session")
def batch_process() -> Iterator[RunningProcess]:
    """One Batch emulator process for the whole session; stopped even if tests fail."""
    with start("emulators.batch") as process:
        yield process


@pytest.fixture(scope="session")
def identity_secret() -> str:
    return secrets.token_urlsafe(16)


@pytest.fixture(scope="session")
def identity_process(identity_secret: str) -> Iterator[RunningProcess]:
    """One identity endpoint process for the whole session; its secret is passed by environment."""
    with start("emulators.identity", env={"IDENTITY_HEADER": identity_secret}) as process:
        yield process


@pytest.fixture(scope="session")
def batch_control(batch_process: RunningProcess) -> Iterator[BatchEmulator]:
    with BatchEmulator(batch_process.url) as control:
        yield control


@pytest.fixture(scope="session")
def identity_control(identity_process: RunningProcess) -> Iterator[IdentityEndpoint]:
    with IdentityEndpoint(identity_process.url) as control:
        yield control


@pytest.fixture
def batch_emulator(batch_process: RunningProcess, batch_control: BatchEmulator) -> BatchHandle:
    """The session's Batch emulator, reset to its start-up state for this test."""
    _check_alive(batch_process)
    batch_control.reset()
    return BatchHandle(batch_process.url, batch_control, batch_process)


@pytest.fixture
def identity_endpoint(
    identity_process: RunningProcess, identity_control: IdentityEndpoint, identity_secret: str
) -> IdentityHandle:
    """The session's identity endpoint, reset (stats, faults, lifetime) for this test."""
    _check_alive(identity_process)
    identity_control.reset()
    return IdentityHandle(identity_control.token_url, identity_secret, identity_control, identity_process)


@pytest.fixture
def identity_env(identity_endpoint: IdentityHandle, monkeypatch: pytest.MonkeyPatch) -> IdentityHandle:
    """``IDENTITY_ENDPOINT``/``IDENTITY_HEADER`` point azure-identity at the local endpoint."""
    for name in ("IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", identity_endpoint.url)
    monkeypatch.setenv("IDENTITY_HEADER", identity_endpoint.secret)
    return identity_endpoint
