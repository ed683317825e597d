"""Chaos run: N deletion messages through the Service Bus emulator, the local host and the Batch emulator,
with faults injected at random (seeded), then an accounting over every message id.

Faults: Batch answers 429 with Retry-After, 503 or 500, 403 (a role assignment still applying), drops the
connection (sometimes after deleting), times out, holds the request past the invocation's deadline or
answers slowly (per job, for a few requests each; a few jobs fail for good); the identity
endpoint fails (500/503, dropped, slow) at random moments and right before each host restart; both
queues refuse incoming messages at random (``rejectSendRate``), so failure records and retry copies fail
to send; the failure queue leaves some sends unanswered (``stallSendRate``), so the deadline cuts them
off; every client connection to Service Bus is dropped (SIGUSR1); and the host is killed (SIGKILL)
mid-message and started again with the same settings. Some jobs are protected by a stale ``ifMatch`` or
an ``ifUnmodifiedSince`` in the past; some messages are invalid; some are sent twice with the same id.

The producer's own sends are refused too (the deletion queue refuses any incoming message): it sends
again until they are taken, as any producer must, so the refusals of retry copies, which the function
must survive, start with the first message.

Deletions are verified (contract section 6) with short settings: a few jobs never leave ``deleting``
(their tasks "never terminate": the Batch emulator's ``deleteStuck``) and must each end with exactly one
``DeletionStuck`` record; every other deleted job must be confirmed gone.

The accounting (``bench.chaos_accounting``): deleted and confirmed or already gone, or exactly one failure
record with the right reason, for every message id; zero lost, zero duplicate records, zero protected jobs
deleted, zero deletions left unconfirmed.

    .venv/bin/python -m bench.chaos --messages 2000 --seed 1
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import ServiceBusError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from bench.chaos_accounting import (
    BROKER_DEAD_LETTER,
    Accounting,
    Expected,
    exported_telemetry,
    peek_all,
    read_outcomes,
    read_records,
    tally,
)
from emulators import RunningProcess, start
from emulators.control import BatchEmulator, IdentityEndpoint
from emulators.servicebus import connection_string

__all__ = ["Accounting", "ChaosOptions", "run"]

ROOT = Path(__file__).resolve().parent.parent
DELETIONS, FAILED = "chaos-deletions", "chaos-failed"
IDENTITY_SECRET = "chaos-identity-secret"  # noqa: S105 - the local endpoint's placeholder, not a secret
STALE_ETAG = "0x8D0000000000001"


@dataclass(frozen=True)
class ChaosOptions:
    messages: int = 2000
    seed: int = 1
    host_kills: int = 3
    connection_drops: int = 2  # SIGUSR1 to the Service Bus emulator
    identity_outages: int = 4  # besides the one before each host restart
    reject_send_rate: float = 0.03  # on both queues
    stall_send_rate: float = 0.01  # on the failure queue: a send never answered, cut off by the deadline
    lock_duration: float = 6.0  # a killed host's messages come back after this
    max_delivery_count: int = 10
    token_lifetime: int = 45  # seconds: tokens are refreshed (30 s after the last request) during the run
    retry_delays: str = "1,1,2"
    quick_retry_delays: str = "0.05,0.1,0.2"
    invocation_deadline: float = 20.0  # a 'held' request is cut off at 15 s (a quarter is kept for the send)
    deadline: float = 600.0  # seconds for the whole run to quiesce
    # Verification (contract section 6): looks at 1, 3, 7, 15 s...; a job still there after 30 s is stuck.
    # 30 s outlasts an identity outage (the credential's retries are bounded to about 10 s) and a killed
    # host's locks, so that only the stuck jobs end stuck.
    verify_deletion_after: float = 1.0
    verify_deletion_timeout: float = 30.0


# --- the plan: what each message is, and what its job will suffer -------------------------------


@dataclass(frozen=True)
class Plan:
    message_id: str
    kind: str  # normal, missing, protected, invalid, stuck
    body: bytes
    job_id: str | None = None  # the job the message names
    seeded: bool = False  # the job exists at the start
    must_survive: bool = False
    faults: tuple[tuple[str, dict[str, Any]], ...] = ()  # (name, Batch fault), applied in this order
    duplicate: bool = False  # sent twice, with the same message id

    def expected(self) -> Expected:
        return Expected(self.message_id, self.kind, self.job_id, self.must_survive)


def _batch_faults(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """None, one or two faults in a row for one job's DELETEs."""
    menu: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("429 + Retry-After", lambda: {"status": 429, "code": "TooManyRequests", "retryAfter": "1"}),
        ("503", lambda: {"status": 503, "code": "ServerBusy", "times": rng.randint(1, 5)}),
        ("500", lambda: {"status": 500, "code": "InternalError", "times": rng.randint(1, 2)}),
        (
            "403 while a role applies",
            lambda: {"status": 403, "code": "AuthorizationFailure", "times": rng.randint(1, 2)},
        ),
        ("dropped connection", lambda: {"drop": True, "times": rng.randint(1, 2)}),
        ("dropped after deleting", lambda: {"drop": True, "apply": True}),
        ("slow answer", lambda: {"latencyMs": rng.randint(200, 1500), "times": rng.randint(1, 3)}),
    ]
    roll = rng.random()
    if roll < 0.45:
        return []
    if roll < 0.47:  # never succeeds: RetriesExhausted
        return [("503 for good", {"status": 503, "code": "ServerBusy", "times": None})]
    if roll < 0.48:  # the message says timeOut=1: the client gives up after 11 s, Batch answers later
        return [("timeout", {"latencyMs": 11_500})]
    if roll < 0.49:  # held far past the client's timeout: INVOCATION_DEADLINE cuts the attempt off
        return [("held past the deadline", {"latencyMs": 60_000})]
    count = 1 if roll < 0.85 else 2
    return [(name, make()) for name, make in rng.sample(menu, count)]


_INVALID_BODIES: list[Callable[[str], dict[str, Any] | bytes]] = [
    lambda job: {"jobId": job, "ifmatch": STALE_ETAG},  # a misspelt precondition: the job must stay
    lambda job: {"jobId": job, "timeOut": "5"},
    lambda job: {"jobId": job, "endpoint": "https://elsewhere.example"},
    lambda job: {"jobId": f"{job} !"},
    lambda job: b"not json at all",
]


def make_plans(count: int, seed: int) -> list[Plan]:
    """52% normal jobs, 3% stuck ones (deleting for ever), 15% missing, 20% protected, 10% invalid
    messages; 5% of the normal and missing ones sent twice."""
    rng = random.Random(seed)
    plans: list[Plan] = []
    for i in range(count):
        roll = rng.random()
        kind = (
            "normal"
            if roll < 0.52
            else "stuck"
            if roll < 0.55
            else "missing"
            if roll < 0.70
            else "protected"
            if roll < 0.9
            else "invalid"
        )
        message_id = f"chaos-{seed}-{i}"
        if kind == "invalid":
            job = f"v-{i}"
            body = rng.choice(_INVALID_BODIES)(job)
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            seeded = isinstance(body, dict) and body.get("jobId") == job
            plans.append(Plan(message_id, kind, raw, job, seeded=seeded, must_survive=seeded))
            continue
        job = f"{kind[0]}-{i}"
        faults = tuple(_batch_faults(rng)) if kind != "stuck" else ()
        request: dict[str, Any] = {"jobId": job, "reason": f"chaos run {seed}"}
        if kind == "protected":
            if rng.random() < 0.5:
                request["ifMatch"] = STALE_ETAG
            else:
                request["ifUnmodifiedSince"] = "2020-01-01T00:00:00Z"
        if any(name == "timeout" for name, _ in faults):
            request["timeOut"] = 1
        plans.append(
            Plan(
                message_id,
                kind,
                json.dumps(request).encode(),
                job,
                seeded=kind != "missing",
                must_survive=kind == "protected",
                faults=faults,
                duplicate=kind in ("normal", "missing") and rng.random() < 0.05,
            )
        )
    return plans


# --- the processes ------------------------------------------------------------------------------


class Deployment:
    """The emulators, and the host (which can be killed and started again with the same settings)."""

    def __init__(self, stack: ExitStack, tmp: Path, options: ChaosOptions) -> None:
        self._stack = stack
        self._tmp = tmp
        batch = stack.enter_context(start("emulators.batch"))
        self.batch = stack.enter_context(BatchEmulator(batch.url))
        self.batch.configure(deleteDelayMs=300)  # a second DELETE may meet the job still "deleting"
        identity = stack.enter_context(start("emulators.identity", env={"IDENTITY_HEADER": IDENTITY_SECRET}))
        self.identity = stack.enter_context(IdentityEndpoint(identity.url))
        self.identity.configure(lifetime_seconds=options.token_lifetime)
        rate, seed = options.reject_send_rate, options.seed
        self.service_bus = stack.enter_context(
            start(
                "emulators.servicebus",
                "--queue",
                f"{DELETIONS}:lockDuration={options.lock_duration},maxDeliveryCount={options.max_delivery_count},"
                f"forwardDeadLetteredMessagesTo={FAILED},rejectSendRate={rate},rejectSendSeed={seed}",
                "--queue",
                # as deployed: duplicate detection for a day (emulators/__main__.py)
                f"{FAILED}:duplicateDetectionWindow=86400,rejectSendRate={rate},rejectSendSeed={seed + 1},"
                f"stallSendRate={options.stall_send_rate}",
            )
        )
        self.conn = connection_string(self.service_bus.url)
        settings = tmp / "local.settings.json"
        settings.write_text('{"IsEncrypted": false, "Values": {}}')
        self._host_args = ["--app-dir", str(ROOT), "--settings", str(settings)]
        self._host_env = {
            "BATCH_ENDPOINT": batch.url,
            "DELETION_QUEUE": DELETIONS,
            "DEAD_LETTER_QUEUE": FAILED,
            "VERIFY_DELETION_AFTER": str(options.verify_deletion_after),
            "VERIFY_DELETION_TIMEOUT": str(options.verify_deletion_timeout),
            "ServiceBusConnection": self.conn,
            "IDENTITY_ENDPOINT": self.identity.token_url,
            "IDENTITY_HEADER": IDENTITY_SECRET,
            "RETRY_DELAYS": options.retry_delays,
            "QUICK_RETRY_DELAYS": options.quick_retry_delays,
            "INVOCATION_DEADLINE": str(options.invocation_deadline),
        }
        self.log_files: list[Path] = []
        self.telemetry_files: list[Path] = []
        self.host_counters: Counter[str] = Counter()  # summed over the hosts that were stopped
        self.host: RunningProcess = self._start_host()

    def _start_host(self) -> RunningProcess:
        log_file = self._tmp / f"host-{len(self.log_files)}.jsonl"
        self.log_files.append(log_file)
        telemetry_file = self._tmp / f"telemetry-{len(self.telemetry_files)}.jsonl"
        self.telemetry_files.append(telemetry_file)
        host = start(
            "emulators.host",
            *self._host_args,
            "--log-file",
            str(log_file),
            "--telemetry",
            str(telemetry_file),
            env=self._host_env,
            ready_timeout=60,
        )
        self._stack.callback(host.stop, 30)
        return host

    def restart_host(self, before_start: Callable[[], None]) -> None:
        """SIGKILL mid-message: nothing in flight finishes or is settled, locks expire on the broker."""
        self.host_counters.update(self.host_stats() or {})
        self.host.process.kill()
        self.host.process.wait()
        before_start()
        self.host = self._start_host()

    def drop_connections(self) -> None:
        self.service_bus.process.send_signal(signal.SIGUSR1)

    def host_stats(self) -> dict[str, int] | None:
        try:
            stats: dict[str, int] = httpx.get(f"{self.host.url}/_host/stats", timeout=5).json()
        except httpx.HTTPError:
            return None
        return stats

    def quiescent(self) -> bool:
        """Nothing in flight, nothing on the deletion queue (scheduled copies and locked messages
        included), nothing in its dead-letter sub-queue."""
        stats = self.host_stats()
        if stats is None or stats.get("inFlight", 0):
            return False
        return not peek_all(self.conn, DELETIONS) and not peek_all(
            self.conn, DELETIONS, ServiceBusSubQueue.DEAD_LETTER
        )


# --- sending ------------------------------------------------------------------------------------


@dataclass
class Producer:
    refused_sends: int = 0  # sends that raised and were made again
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def produce(self, conn: str, plans: list[Plan], seed: int) -> None:
        """Send every message (the duplicates again, later), 25 to a batch, sending refused ones again."""
        order = [*plans, *(plan for plan in plans if plan.duplicate)]
        random.Random(seed + 7).shuffle(order)
        try:
            with ServiceBusClient.from_connection_string(conn) as client:
                for first in range(0, len(order), 25):
                    self._send(client, order[first : first + 25])
        except BaseException as error:
            self.error = error
        finally:
            self.done.set()

    def _send(self, client: ServiceBusClient, chunk: list[Plan]) -> None:
        for attempt in range(30):
            if self.stop.is_set():
                raise RuntimeError("stopped before every message was sent")
            try:
                with client.get_queue_sender(DELETIONS) as sender:
                    sender.send_messages(
                        [
                            ServiceBusMessage(
                                plan.body, message_id=plan.message_id, content_type="application/json"
                            )
                            for plan in chunk
                        ]
                    )
                return
            except ServiceBusError:
                self.refused_sends += 1
                self.stop.wait(0.05 * (attempt + 1))  # a producer's backoff
        raise RuntimeError("a batch was refused 30 times")


# --- the run ------------------------------------------------------------------------------------


def _events(options: ChaosOptions, rng: random.Random) -> list[tuple[int, str]]:
    """(Batch requests seen, what to do), in order: thresholds fall in the busy part of the run."""
    events: list[tuple[int, str]] = []
    for kind, count in (
        ("kill host", options.host_kills),
        ("drop connections", options.connection_drops),
        ("identity outage", options.identity_outages),
    ):
        events += [(int(options.messages * rng.uniform(0.1, 0.7)), kind) for _ in range(count)]
    return sorted(events)


def _identity_outage(identity: IdentityEndpoint, rng: random.Random, *, failing: bool = False) -> None:
    """The next token requests fail (500/503 or a dropped connection) or, unless ``failing``, are slow.
    It replaces an outage no token request has met yet: stacked, they would make one long outage (one
    token request, with azure-identity's own retries, then takes up to a minute, and every invocation
    of the host waits for it)."""
    identity.clear_faults()
    choice = rng.random() * (0.7 if failing else 1.0)
    if choice < 0.4:
        identity.add_fault(times=rng.randint(3, 6), status=rng.choice([500, 503]))
    elif choice < 0.7:
        identity.add_fault(times=rng.randint(2, 4), drop=True)
    else:
        identity.add_fault(times=rng.randint(1, 3), latency_ms=rng.randint(500, 2000))


def run(options: ChaosOptions, tmp: Path | None = None) -> Accounting:
    """Run the chaos and return its accounting; every process is stopped before it returns."""
    with contextlib.ExitStack() as stack:
        if tmp is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        return _run(options, tmp, stack)
    raise AssertionError("unreachable")  # ExitStack could swallow an exception, as far as mypy knows


def _seed(batch: BatchEmulator, plans: list[Plan]) -> None:
    """The jobs that exist at the start; a stuck plan's job never finishes deleting."""
    seeded = [plan.job_id for plan in plans if plan.seeded and plan.job_id and plan.kind != "stuck"]
    for first in range(0, len(seeded), 500):
        batch.add_jobs(seeded[first : first + 500])
    for plan in plans:
        if plan.kind == "stuck" and plan.job_id:
            batch.add_job(plan.job_id, deleteStuck=True)


def _run(options: ChaosOptions, tmp: Path, stack: ExitStack) -> Accounting:
    rng = random.Random(options.seed)
    plans = make_plans(options.messages, options.seed)
    deployment = Deployment(stack, tmp, options)
    batch = deployment.batch
    _seed(batch, plans)
    fault_names: dict[str, str] = {}
    for plan in plans:
        for name, fault in plan.faults:
            fault_names[batch.add_fault(**fault, match={"jobId": plan.job_id, "method": "DELETE"})] = name
    events = _events(options, rng)
    happened: Counter[str] = Counter()
    started = time.monotonic()
    producer = Producer()
    sending = threading.Thread(
        target=producer.produce, args=(deployment.conn, plans, options.seed), name="chaos-producer"
    )
    sending.start()
    stack.callback(sending.join)
    stack.callback(producer.stop.set)
    deadline = started + options.deadline
    quiet_since: float | None = None
    quiesced = False
    while time.monotonic() < deadline:
        progress = batch.stats()["requests"]
        while events and events[0][0] <= progress:
            _, what = events.pop(0)
            if what == "kill host":  # and the new host's first token requests fail
                deployment.restart_host(lambda: _identity_outage(deployment.identity, rng, failing=True))
                happened["host restarts"] += 1
            elif what == "drop connections":
                deployment.drop_connections()
                happened["connection drops"] += 1
            else:
                _identity_outage(deployment.identity, rng)
        if producer.done.is_set() and not events and deployment.quiescent():
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 1.0:  # and still so a second later
                quiesced = True
                break
        else:
            quiet_since = None
        time.sleep(0.2)  # the polling interval
    return _account(
        deployment,
        plans=plans,
        fault_names=fault_names,
        happened=happened,
        producer=producer,
        quiesced=quiesced,
        started=started,
    )


def _account(
    deployment: Deployment,
    *,
    plans: list[Plan],
    fault_names: dict[str, str],
    happened: Counter[str],
    producer: Producer,
    quiesced: bool,
    started: float,
) -> Accounting:
    wall_seconds = time.monotonic() - started
    records = read_records(deployment.conn, FAILED)
    log = read_outcomes(deployment.log_files)
    jobs = {job["id"].lower(): job for job in deployment.batch.jobs()}
    requests = deployment.batch.requests()
    final_states, outcomes, abandons, problems = tally(
        [plan.expected() for plan in plans], records, log, jobs, requests, queues=(DELETIONS, FAILED)
    )
    faults: Counter[str] = Counter()
    for request in requests:
        if request["faultId"] in fault_names:
            faults[f"Batch: {fault_names[request['faultId']]}"] += 1
    for status, count in deployment.identity.stats()["byStatus"].items():
        if status != "200":
            faults[f"identity endpoint: {status}"] += count
    for cause, count in abandons.items():
        faults[f"invocation abandoned: {cause}"] += count
    faults["producer: send refused, sent again"] += producer.refused_sends
    host = deployment.host_counters + Counter(deployment.host_stats() or {})
    del host["inFlight"]
    notes = [f"the producer failed: {producer.error!r}"] if producer.error else []
    pending = peek_all(deployment.conn, DELETIONS) + peek_all(
        deployment.conn, DELETIONS, ServiceBusSubQueue.DEAD_LETTER
    )
    return Accounting(
        messages=len(plans),
        by_kind=Counter(plan.kind for plan in plans),
        duplicate_sends=sum(plan.duplicate for plan in plans),
        final_states=final_states,
        outcomes=outcomes,
        records_by_reason=Counter(record.reason for record in records),
        broker_dead_letters=sum(record.reason == BROKER_DEAD_LETTER for record in records),
        faults=+faults,
        host=host,
        host_restarts=happened["host restarts"],
        connection_drops=happened["connection drops"],
        lost=problems.get("lost", []),
        duplicate_records=problems.get("duplicate", []),
        split_records=problems.get("split", []),
        wrong_reason=problems.get("wrong reason", []),
        protected_deleted=problems.get("protected deleted", []),
        invalid_sent_to_batch=problems.get("invalid sent to Batch", []),
        unknown_records=problems.get("unknown records", []),
        unconfirmed=problems.get("unconfirmed", []),
        pending=len(pending),
        quiesced=quiesced,
        wall_seconds=wall_seconds,
        exported=exported_telemetry(
            deployment.log_files, deployment.telemetry_files, killed=happened["host restarts"]
        ),
        notes=notes,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    defaults = ChaosOptions()
    parser.add_argument("--messages", type=int, default=defaults.messages)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--host-kills", type=int, default=defaults.host_kills)
    parser.add_argument("--connection-drops", type=int, default=defaults.connection_drops)
    parser.add_argument("--identity-outages", type=int, default=defaults.identity_outages)
    parser.add_argument("--reject-send-rate", type=float, default=defaults.reject_send_rate)
    parser.add_argument("--stall-send-rate", type=float, default=defaults.stall_send_rate)
    parser.add_argument("--deadline", type=float, default=defaults.deadline, help="seconds")
    args = parser.parse_args()
    options = ChaosOptions(
        messages=args.messages,
        seed=args.seed,
        host_kills=args.host_kills,
        connection_drops=args.connection_drops,
        identity_outages=args.identity_outages,
        reject_send_rate=args.reject_send_rate,
        stall_send_rate=args.stall_send_rate,
        deadline=args.deadline,
    )
    print(f"chaos run: {json.dumps(dataclasses.asdict(options))}", flush=True)
    accounting = run(options)
    print(accounting.render())
    sys.exit(0 if accounting.ok else 1)


if __name__ == "__main__":
    main()
