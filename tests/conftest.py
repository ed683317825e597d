"""Shared fixtures: the emulators as real processes (one per session), reset before every test."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import inspect
import itertools
import json
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import azure.servicebus as servicebus_sync
import azure.servicebus.aio as servicebus_aio
import pytest

from emulators import RunningProcess, canary, start
from emulators.control import BatchEmulator, IdentityEndpoint, IngestionEndpoint
from emulators.servicebus import connection_string

# The secrets canary: every token in the session carries it; seen anywhere but a Batch Authorization
# header (a log, a report, an emulator), it fails the run. See tests/canary.py.
pytest_plugins = ["tests.canary"]


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


@pytest.fixture
def token_canary() -> str:
    """The session's canary: the identity endpoint (and ``make_token``) put it in every token."""
    value = canary.current()
    assert value, "the canary plugin (tests/canary.py) sets it for the whole session"
    return value


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


@dataclass(frozen=True)
class IngestionHandle:
    """The Application Insights ingestion stand-in: ``url`` is its HTTPS base URL (the connection
    string's ``IngestionEndpoint``), ``certificate`` the self-signed certificate a client must trust
    (``REQUESTS_CA_BUNDLE`` for the exporter)."""

    url: str
    certificate: str
    control: IngestionEndpoint
    process: RunningProcess


@pytest.fixture(scope="session")
def ingestion_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningProcess, str]]:
    """One ingestion stand-in for the session, and the certificate it serves."""
    tls = tmp_path_factory.mktemp("ingestion-tls")
    with start("emulators.ingestion", "--tls-dir", str(tls)) as process:
        yield process, str(tls / "cert.pem")


@pytest.fixture
def ingestion(ingestion_process: tuple[RunningProcess, str]) -> Iterator[IngestionHandle]:
    """The session's ingestion stand-in, emptied for this test."""
    process, certificate = ingestion_process
    _check_alive(process)
    with IngestionEndpoint(process.url, certificate) as control:
        control.reset()
        yield IngestionHandle(process.url, certificate, control, process)


# --- Service Bus ---------------------------------------------------------------------------------
# One emulator per session, with SERVICEBUS_QUEUE_SETS sets of queues declared up front. Every test
# that asks for `servicebus` gets a set of its own (so no test sees another's messages, and nothing is
# drained). `servicebus_sdks` also hands a second set to the aio half of the test.


@dataclass(frozen=True)
class ServiceBusQueues:
    """One test's queues (names), each kind declared with the properties noted."""

    queue: str  # defaults: lockDuration 60 s, maxDeliveryCount 10
    short_lock: str  # lockDuration 1.5 s, maxDeliveryCount 3
    few_deliveries: str  # maxDeliveryCount 2
    dedup: str  # duplicateDetectionWindow 60 s
    forwarding: str  # maxDeliveryCount 2, forwardDeadLetteredMessagesTo=forward_target
    forward_target: str  # defaults
    short_ttl: str  # defaultMessageTimeToLive 60 s


SERVICEBUS_QUEUE_SETS = 200
_SERVICEBUS_QUEUE_PROPERTIES: dict[str, dict[str, Any]] = {
    "queue": {},
    "short_lock": {"lockDuration": 1.5, "maxDeliveryCount": 3},
    "few_deliveries": {"maxDeliveryCount": 2},
    "dedup": {"duplicateDetectionWindow": 60},
    "forwarding": {"maxDeliveryCount": 2, "forwardDeadLetteredMessagesTo": "forward-target-{n}"},
    "forward_target": {},
    "short_ttl": {"defaultMessageTimeToLive": 60},
}
_servicebus_queue_sets = itertools.count()


def _servicebus_queue_set(n: int) -> ServiceBusQueues:
    return ServiceBusQueues(
        **{field.name: f"{field.name.replace('_', '-')}-{n}" for field in fields(ServiceBusQueues)}
    )


def _servicebus_config() -> dict[str, Any]:
    queues = []
    for n in range(SERVICEBUS_QUEUE_SETS):
        names = _servicebus_queue_set(n)
        for kind, properties in _SERVICEBUS_QUEUE_PROPERTIES.items():
            declared = {
                key: value.format(n=n) if isinstance(value, str) else value
                for key, value in properties.items()
            }
            queues.append({"name": getattr(names, kind), **declared})
    return {"queues": queues}


def _fresh_servicebus_queues() -> ServiceBusQueues:
    n = next(_servicebus_queue_sets)
    if n >= SERVICEBUS_QUEUE_SETS:
        pytest.fail(
            f"all {SERVICEBUS_QUEUE_SETS} Service Bus queue sets are used: raise SERVICEBUS_QUEUE_SETS"
        )
    return _servicebus_queue_set(n)


@dataclass(frozen=True)
class ServiceBusHandle:
    """The session's Service Bus emulator and this test's own queues."""

    url: str  # sb://127.0.0.1:PORT
    connection_string: str  # what the SDK (and the Functions host) take: the well-known key
    queues: ServiceBusQueues
    process: RunningProcess
    secondary_key: str  # a second key of RootManageSharedAccessKey the emulator accepts: a real secret


@pytest.fixture(scope="session")
def servicebus_secondary_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()  # shaped like a Service Bus key


@pytest.fixture(scope="session")
def servicebus_process(
    tmp_path_factory: pytest.TempPathFactory, servicebus_secondary_key: str
) -> Iterator[RunningProcess]:
    """One Service Bus emulator for the session, its queues declared from a --config file; it takes
    tokens signed with the well-known key and with ``servicebus_secondary_key``."""
    config = tmp_path_factory.mktemp("servicebus") / "queues.json"
    config.write_text(json.dumps(_servicebus_config()))
    key = {"SERVICEBUS_SHARED_ACCESS_KEY": f"RootManageSharedAccessKey={servicebus_secondary_key}"}
    with start("emulators.servicebus", "--config", str(config), env=key) as process:
        yield process


@pytest.fixture
def servicebus(servicebus_process: RunningProcess, servicebus_secondary_key: str) -> ServiceBusHandle:
    """The session's Service Bus emulator, with a set of queues no other test uses."""
    _check_alive(servicebus_process)
    url = servicebus_process.url
    return ServiceBusHandle(
        url, connection_string(url), _fresh_servicebus_queues(), servicebus_process, servicebus_secondary_key
    )


class _SdkRunner:
    """Runs SDK calls off the test's event loop: the sync client in worker threads, the aio client on
    one background loop. Handlers are closed in the background: the SDK takes up to a second to close
    (it joins its keep-alive thread), which would otherwise dominate the suite."""

    def __init__(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(64, thread_name_prefix="servicebus-sync")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="servicebus-aio", daemon=True)
        self._thread.start()
        self._closing: list[concurrent.futures.Future[Any]] = []

    def submit(
        self, is_async: bool, function: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        if not is_async:
            return self._executor.submit(function, *args, **kwargs)

        async def invoke() -> Any:
            result = function(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop)

    def close_later(self, is_async: bool, close: Callable[[], Any]) -> None:
        self._closing.append(self.submit(is_async, close))

    def shutdown(self) -> None:
        concurrent.futures.wait(self._closing, timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _unwrap(value: Any) -> Any:
    return value.target if isinstance(value, SdkObject) else value


class SdkObject:
    """An SDK sender, receiver or lock renewer whose methods are awaited, whichever the flavour."""

    def __init__(self, target: Any, api: ServiceBusApi) -> None:
        self.target = target
        self._api = api

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.target, name)
        if not callable(attribute):
            return attribute

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self._api.call(attribute, *args, **kwargs)

        return call


class ServiceBusApi:
    """The azure-servicebus SDK, ``sync`` or ``aio``, on this test's queues: open handlers with
    ``await sender(name)`` / ``await receiver(name, **options)``, then await their methods."""

    def __init__(
        self, flavour: str, connection_string: str, queues: ServiceBusQueues, runner: _SdkRunner
    ) -> None:
        self.flavour = flavour
        self.queues = queues
        self._connection_string = connection_string
        self._is_async = flavour == "aio"
        self._runner = runner
        self._clients: dict[tuple[tuple[str, Any], ...], Any] = {}
        self._opened: list[Any] = []

    async def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        args = tuple(_unwrap(arg) for arg in args)
        kwargs = {key: _unwrap(value) for key, value in kwargs.items()}
        return await asyncio.wrap_future(self._runner.submit(self._is_async, function, *args, **kwargs))

    async def _client_(self, options: dict[str, Any]) -> Any:
        key = tuple(sorted(options.items()))
        if key not in self._clients:
            client_class = (
                servicebus_aio.ServiceBusClient if self._is_async else servicebus_sync.ServiceBusClient
            )
            self._clients[key] = await self.call(
                client_class.from_connection_string, self._connection_string, **options
            )
        return self._clients[key]

    async def _open(self, handler: Any) -> SdkObject:
        await self.call(handler.__aenter__ if self._is_async else handler.__enter__)
        self._opened.append(handler)
        return SdkObject(handler, self)

    async def sender(self, queue: str, *, client_options: dict[str, Any] | None = None) -> SdkObject:
        """``client_options``: for ``ServiceBusClient`` (e.g. ``retry_total``)."""
        client = await self._client_(client_options or {})
        return await self._open(await self.call(client.get_queue_sender, queue))

    async def receiver(
        self, queue: str, *, client_options: dict[str, Any] | None = None, **options: Any
    ) -> SdkObject:
        """``options``: the SDK's (``sub_queue``, ``receive_mode``, ``prefetch_count``, ...)."""
        client = await self._client_(client_options or {})
        return await self._open(await self.call(client.get_queue_receiver, queue, **options))

    async def auto_lock_renewer(self, **options: Any) -> SdkObject:
        renewer_class = servicebus_aio.AutoLockRenewer if self._is_async else servicebus_sync.AutoLockRenewer
        renewer = await self.call(renewer_class, **options)
        self._opened.append(renewer)
        return SdkObject(renewer, self)

    def close_later(self) -> None:
        for handler in reversed(self._opened):
            self._runner.close_later(self._is_async, handler.close)
        self._opened.clear()


class ServiceBusSdks:
    """Runs a test's scenario with the sync and the aio SDK at the same time, each on its own queues."""

    def __init__(self, sync: ServiceBusApi, aio: ServiceBusApi) -> None:
        self.sync = sync
        self.aio = aio

    async def run(self, scenario: Callable[[ServiceBusApi], Awaitable[None]]) -> None:
        apis = (self.sync, self.aio)
        results = await asyncio.gather(*(scenario(api) for api in apis), return_exceptions=True)
        failures: list[BaseException] = []
        for api, result in zip(apis, results, strict=True):
            if isinstance(result, KeyboardInterrupt | SystemExit | asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):  # pytest's own failures (pytest.fail) included
                result.add_note(f"(with the {api.flavour} SDK)")
                failures.append(result)
        if len(failures) == 1:
            raise failures[0]
        if failures:
            raise BaseExceptionGroup("the scenario failed with both SDK flavours", failures)


@pytest.fixture(scope="session")
def _servicebus_runner() -> Iterator[_SdkRunner]:
    runner = _SdkRunner()
    yield runner
    runner.shutdown()


@pytest.fixture
def servicebus_sdks(servicebus: ServiceBusHandle, _servicebus_runner: _SdkRunner) -> Iterator[ServiceBusSdks]:
    """The sync and the aio SDK against the session's emulator (``run(scenario)`` runs both at once)."""
    sync = ServiceBusApi("sync", servicebus.connection_string, servicebus.queues, _servicebus_runner)
    aio = ServiceBusApi("aio", servicebus.connection_string, _fresh_servicebus_queues(), _servicebus_runner)
    yield ServiceBusSdks(sync, aio)
    sync.close_later()
    aio.close_later()
