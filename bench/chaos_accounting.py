"""The chaos run's accounting (see ``bench.chaos``): what happened to every message id, read back from the
failure queue, the host's structured log, the Batch emulator's jobs and request log, and the broker.

Per message id (a retry copy counts for the first message: ``originalMessageId``):

- normal job: deleted and confirmed gone (a ``DeletionConfirmed`` outcome, or ``AlreadyDeleted`` when a
  later attempt found it gone itself), or exactly one ``RetriesExhausted`` record;
- stuck job (its deletion never finishes): still ``deleting`` and exactly one ``DeletionStuck`` record;
- missing job: an ``AlreadyDeleted`` (or ``Deleted``/``AlreadyDeleting``) outcome in the log, or one
  ``RetriesExhausted`` record;
- protected job: still ``active``, never a 2xx DELETE in the request log, and exactly one
  ``PreconditionFailed`` record (or ``RetriesExhausted``, if the faults outlasted the schedule);
- invalid message: exactly one ``InvalidMessage`` record, and no request to Batch for its job.

A broker dead letter (``MaxDeliveryCountExceeded``: the message failed ``maxDeliveryCount`` deliveries in
a row, and the broker forwarded it to the failure queue) is also visible to an operator there, so it
counts as that message's one record, of any kind; it is counted apart. Anything else is a finding: a
message with no trace is lost; the same record twice is a duplicate; two records with different ids for one
request are split records (contract section 5 names every record of a request `<originalMessageId>:failed`,
so a message that came back after its retry copy was sent, and the copy, cannot leave two).

Telemetry (contract section 7: failures are never sampled away): every host runs with ``--telemetry``, and
every invocation the host logged with a failure outcome must have its exported log record, with the same
message id and outcome. A host killed mid-run may have logged a line it then had no time to export (the
record is made right after the log line); those are counted apart, at most ``maxConcurrentCalls`` per
kill. Successes are sampled (the default, about 5 a second): their share is reported, not judged.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.servicebus import ServiceBusClient, ServiceBusSubQueue
from azure.servicebus.exceptions import ServiceBusError

__all__ = [
    "Accounting",
    "Expected",
    "Exported",
    "Record",
    "exported_telemetry",
    "peek_all",
    "read_outcomes",
    "read_records",
    "tally",
]

BROKER_DEAD_LETTER = "MaxDeliveryCountExceeded"
ALLOWED_REASONS = {
    "normal": {"RetriesExhausted", BROKER_DEAD_LETTER},
    "missing": {"RetriesExhausted", BROKER_DEAD_LETTER},
    "protected": {"PreconditionFailed", "RetriesExhausted", BROKER_DEAD_LETTER},
    "invalid": {"InvalidMessage", BROKER_DEAD_LETTER},
    "stuck": {"DeletionStuck", BROKER_DEAD_LETTER},
}
_GONE_OUTCOMES = {"Deleted", "AlreadyDeleted", "AlreadyDeleting"}
# A deletion is confirmed when a verification found the job gone, or when a later DELETE did (404).
_CONFIRMED_OUTCOMES = {"DeletionConfirmed", "AlreadyDeleted"}
_RETRY_SUFFIX = re.compile(r":(retry|verify)\d+$")
# Outcomes logged at WARNING or above (delete_job/processor.py _LEVELS): never sampled away.
FAILURE_OUTCOMES = frozenset(
    {
        "RetryScheduled",
        "PreconditionFailed",
        "Recreated",
        "BatchRejected",
        "InvalidMessage",
        "RetriesExhausted",
        "DeletionStuck",
        "Abandoned",
    }
)
IN_FLIGHT_PER_HOST = 64  # host.json maxConcurrentCalls: what a SIGKILL can cut between log and export


@dataclass(frozen=True)
class Expected:
    """What the accounting needs to know about one sent message."""

    message_id: str
    kind: str  # normal, missing, protected, invalid
    job_id: str | None
    must_survive: bool  # a protected job, or an existing job named by an invalid message


@dataclass(frozen=True)
class Record:
    root: str  # the first message's id
    reason: str
    message_id: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def root_of(message_id: str, properties: dict[Any, Any] | None) -> str:
    """The first message's id: a retry copy or a verification message names it in ``originalMessageId``."""
    for key, value in (properties or {}).items():
        if _text(key) == "originalMessageId":
            return _text(value)
    return _RETRY_SUFFIX.sub("", message_id)


# --- reading back -------------------------------------------------------------------------------


def _retrying(read: Callable[[], list[Any]], attempts: int = 20) -> list[Any]:
    for _ in range(attempts - 1):
        try:
            return read()
        except ServiceBusError:
            time.sleep(0.2)  # the emulator dropped our connection (SIGUSR1): read again
    return read()


def peek_all(conn: str, queue: str, sub_queue: ServiceBusSubQueue | None = None) -> list[Any]:
    """Every message on the queue, in any state (scheduled and locked ones included), unchanged."""

    def read() -> list[Any]:
        found: list[Any] = []
        with (
            ServiceBusClient.from_connection_string(conn) as client,
            client.get_queue_receiver(queue, sub_queue=sub_queue) as receiver,
        ):
            while True:
                after = found[-1].sequence_number + 1 if found else 0
                page = receiver.peek_messages(max_message_count=250, sequence_number=after)
                if not page:
                    return found
                found.extend(page)

    return _retrying(read)


def read_records(conn: str, queue: str) -> list[Record]:
    """The failure queue: the function's records, and the broker's forwarded dead letters."""
    records = []
    for message in peek_all(conn, queue):
        properties = {_text(k): v for k, v in (message.application_properties or {}).items()}
        if "DeadLetterReason" in properties:  # the broker's own, forwarded: its body is the request
            reason = _text(properties["DeadLetterReason"])
            records.append(Record(root_of(message.message_id, properties), reason, message.message_id))
            continue
        body = json.loads(b"".join(message.body))
        original = body["originalMessage"]
        root = root_of(original["messageId"], original.get("applicationProperties"))
        records.append(Record(root, body["reason"], message.message_id))
    return records


def _json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue  # a killed host's last line may be cut short
    return found


def _host_outcomes(path: Path) -> list[dict[str, Any]]:
    return [
        {**entry["customDimensions"], "text": entry["message"]}
        for entry in _json_lines(path)
        if entry.get("logger") == "delete_job"
    ]


def read_outcomes(log_files: list[Path]) -> list[dict[str, Any]]:
    """The function's log records (custom dimensions, plus the text as ``text``), from every host."""
    return [outcome for path in log_files for outcome in _host_outcomes(path)]


@dataclass
class Exported:
    """What the hosts exported through OpenTelemetry against what they logged."""

    failures: tuple[int, int] = (0, 0)  # (exported, logged)
    successes: tuple[int, int] = (0, 0)
    unexported_failures: list[str] = field(default_factory=list)  # from a host that was not killed
    cut_by_kill: int = 0
    kills: int = 0

    @property
    def ok(self) -> bool:
        return not self.unexported_failures and self.cut_by_kill <= IN_FLIGHT_PER_HOST * self.kills


def exported_telemetry(log_files: list[Path], telemetry_files: list[Path], killed: int) -> Exported:
    """Host by host (the first ``killed`` were SIGKILLed): each logged failure against the exported
    records, by (message id, outcome)."""
    result = Exported(kills=killed)
    failures = [0, 0]
    successes = [0, 0]
    for index, (log_file, telemetry_file) in enumerate(zip(log_files, telemetry_files, strict=True)):
        exported: Counter[tuple[str, str]] = Counter()
        for entry in _json_lines(telemetry_file):
            if entry.get("kind") == "log record":
                attributes = entry["item"]["attributes"]
                exported[str(attributes.get("messageId")), str(attributes.get("outcome"))] += 1
        for outcome in _host_outcomes(log_file):
            key = (str(outcome.get("messageId")), str(outcome.get("outcome")))
            failed = key[1] in FAILURE_OUTCOMES
            tally = failures if failed else successes
            tally[1] += 1
            if exported[key] > 0:
                exported[key] -= 1
                tally[0] += 1
            elif failed and index < killed:
                result.cut_by_kill += 1
            elif failed:
                result.unexported_failures.append(f"{key[0]} {key[1]}")
    result.failures, result.successes = (failures[0], failures[1]), (successes[0], successes[1])
    return result


# --- the accounting -----------------------------------------------------------------------------


@dataclass
class Accounting:
    messages: int
    by_kind: Counter[str]
    duplicate_sends: int
    final_states: Counter[str]
    outcomes: Counter[str]  # every invocation's logged outcome
    records_by_reason: Counter[str]
    broker_dead_letters: int
    faults: Counter[str]
    host: Counter[str]  # the hosts' own counters, summed over restarts
    host_restarts: int
    connection_drops: int
    lost: list[str]
    duplicate_records: list[str]
    split_records: list[str]  # one request, two records with different ids (contract v1's ids did this)
    wrong_reason: list[str]
    protected_deleted: list[str]
    invalid_sent_to_batch: list[str]
    unknown_records: list[str]
    unconfirmed: list[str]  # deleted, but no verification confirmed it gone
    pending: int  # messages left on the deletion queue or its dead-letter sub-queue
    quiesced: bool
    wall_seconds: float
    exported: Exported = field(default_factory=Exported)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.quiesced
            and self.exported.ok
            and not (
                self.lost
                or self.duplicate_records
                or self.split_records
                or self.wrong_reason
                or self.protected_deleted
                or self.invalid_sent_to_batch
                or self.unknown_records
                or self.unconfirmed
                or self.pending
            )
        )

    def render(self) -> str:
        def counts(counter: Counter[str]) -> str:
            return ", ".join(f"{key} {value}" for key, value in sorted(counter.items())) or "none"

        def listed(items: list[str]) -> str:
            return f"{len(items)}" + (f"  {items[:10]}" if items else "")

        fault_lines = [f"  {key:<44} {value}" for key, value in sorted(self.faults.items())]
        lines = [
            f"messages                {self.messages} ({counts(self.by_kind)});"
            f" sent twice {self.duplicate_sends}",
            "final states:",
            *(f"  {key:<44} {value}" for key, value in sorted(self.final_states.items())),
            f"function outcomes       {counts(self.outcomes)}",
            f"records by reason       {counts(self.records_by_reason)}",
            f"broker dead letters     {self.broker_dead_letters} (MaxDeliveryCountExceeded, forwarded to the"
            " failure queue: that message's one record)",
            "faults injected (that took effect):",
            *fault_lines,
            f"host restarts           {self.host_restarts} (SIGKILL mid-run, started again)",
            f"connection drops        {self.connection_drops} (SIGUSR1: every Service Bus client)",
            f"hosts' counters         {counts(self.host)}",
            f"lost                    {listed(self.lost)}",
            f"duplicate records       {listed(self.duplicate_records)}",
            f"split records           {listed(self.split_records)} (requests with two records of different"
            " ids; every record is named <originalMessageId>:failed, so none is expected)",
            f"wrong reason            {listed(self.wrong_reason)}",
            f"protected deleted       {listed(self.protected_deleted)}",
            f"invalid sent to Batch   {listed(self.invalid_sent_to_batch)}",
            f"records for unknown ids {listed(self.unknown_records)}",
            f"deleted, unconfirmed    {listed(self.unconfirmed)} (no DeletionConfirmed for a deleted job)",
            f"left on the queues      {self.pending}",
            f"telemetry: failures     {self.exported.failures[0]} of {self.exported.failures[1]} logged"
            f" exported; not exported {listed(self.exported.unexported_failures)}; cut by a kill"
            f" {self.exported.cut_by_kill} (at most {IN_FLIGHT_PER_HOST} a kill)",
            f"telemetry: successes    {self.exported.successes[0]} of {self.exported.successes[1]} logged"
            " exported (sampled: about 5 a second by default)",
            f"quiesced                {self.quiesced}",
            f"wall time               {self.wall_seconds:.1f} s",
            *(f"note: {note}" for note in self.notes),
            "RESULT                  " + ("OK" if self.ok else "FAILED"),
        ]
        return "\n".join(lines)


def _judge_several(expected: Expected, records: list[Record]) -> tuple[str, str]:
    ids = [record.message_id for record in records]
    if len(set(ids)) < len(ids):  # the same record twice: duplicate detection failed
        return "more than one record", "duplicate"
    if any(record.reason not in ALLOWED_REASONS[expected.kind] for record in records):
        return "more than one record", "wrong reason"
    # Every record of one request is named `<originalMessageId>:failed` (contract section 5), so two ids
    # mean two deliveries of one request each left a record that duplicate detection could not merge.
    return f"{len(records)} records with different ids", "split"


def judge(
    expected: Expected, job: dict[str, Any] | None, records: list[Record], outcomes: list[str]
) -> tuple[str, str | None]:
    """The message's final state, and what is wrong with it (None when nothing is)."""
    if len(records) > 1:
        return _judge_several(expected, records)
    job_gone = job is None or job["state"] == "deleting"
    if records:
        reason = records[0].reason
        problem = None if reason in ALLOWED_REASONS[expected.kind] else "wrong reason"
        deleted_after_all = expected.kind == "normal" and job_gone  # by a duplicate's later attempt
        if expected.kind == "stuck" and (job is None or job["state"] != "deleting"):
            problem = problem or "wrong reason"  # a DeletionStuck record for a job that is gone
        return ("deleted, and a " if deleted_after_all else "") + f"{reason} record", problem
    if expected.kind == "normal" and job_gone:
        if _CONFIRMED_OUTCOMES.intersection(outcomes):
            return "deleted, confirmed", None
        return "deleted, not confirmed", "unconfirmed"
    if expected.kind == "missing" and _GONE_OUTCOMES.intersection(outcomes):
        return "already gone", None
    return "no record" + (", job still there" if job is not None else ""), "lost"


def _abandon_cause(text: str, failure_queue: str, deletion_queue: str) -> str:
    """Why an invocation raised, from its log record's text."""
    error = text.partition("; ")[2]
    kind = error.split(":", 1)[0] or "unknown"
    if kind == "ServiceBusQuotaExceededError":  # rejectSendRate's refusal
        if f"'{failure_queue}'" in error:
            return "failure-record send refused"
        if f"'{deletion_queue}'" in error:
            return "retry-copy send refused"
    if kind == "SendTimeoutError":  # INVOCATION_DEADLINE left no time for the send
        return "send cut off by the deadline"
    return kind


def tally(
    expected: list[Expected],
    records: list[Record],
    log: list[dict[str, Any]],
    jobs: dict[str, dict[str, Any]],
    requests: list[dict[str, Any]],
    *,
    queues: tuple[str, str],
) -> tuple[Counter[str], Counter[str], Counter[str], dict[str, list[str]]]:
    """Final states, logged outcomes, abandon causes and problems (by kind: message ids) for every
    expected message. ``queues`` = (deletion queue, failure queue); ``requests`` = Batch's request log."""
    deletion_queue, failure_queue = queues
    by_root: defaultdict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_root[record.root].append(record)
    outcomes_of: defaultdict[str, list[str]] = defaultdict(list)
    abandons: Counter[str] = Counter()
    for entry in log:
        outcomes_of[root_of(entry["messageId"], None)].append(entry["outcome"])
        if entry["outcome"] == "Abandoned":
            abandons[_abandon_cause(entry["text"], failure_queue, deletion_queue)] += 1
    deletes: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for request in requests:
        if request["method"] == "DELETE" and request["path"].startswith("/jobs/"):
            deletes[request["path"].removeprefix("/jobs/").lower()].append(request)
    final_states: Counter[str] = Counter()
    problems: defaultdict[str, list[str]] = defaultdict(list)
    for message in expected:
        job = jobs.get(message.job_id.lower()) if message.job_id else None
        found = by_root.pop(message.message_id, [])
        state, problem = judge(message, job, found, outcomes_of[message.message_id])
        final_states[f"{message.kind}: {state}"] += 1
        if problem:
            problems[problem].append(message.message_id)
        if message.must_survive and message.job_id:
            deleted = any(200 <= (r["status"] or 0) < 300 for r in deletes.get(message.job_id.lower(), []))
            if job is None or job["state"] != "active" or deleted:
                problems["protected deleted"].append(message.message_id)
        if message.kind == "invalid" and message.job_id and deletes.get(message.job_id.lower()):
            problems["invalid sent to Batch"].append(message.message_id)
    problems["unknown records"] = sorted(by_root)
    outcomes = Counter(entry["outcome"] for entry in log)
    return final_states, outcomes, abandons, dict(problems)
