"""The whole flow on one machine (`make demo`): emulators, the local host running function_app, a mix of
deletion requests that shows every outcome, what happened to each, and the dead-letter table.

Everything runs on free loopback ports and stops at the end, pass or fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.servicebus import ServiceBusClient, ServiceBusMessage

from emulators import start
from emulators.__main__ import start_all
from emulators.control import BatchEmulator
from emulators.host._config import apply_local_settings

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Case:
    title: str
    body: dict[str, Any]
    final: str  # the outcome that ends this message's story


CASES = [
    # A deletion Batch accepted is checked VERIFY_DELETION_AFTER (1 s here) later: DeletionConfirmed.
    Case(
        "a finished workflow's job",
        {"jobId": "demo-nightly-42", "reason": "workflow 42 finished"},
        "DeletionConfirmed",
    ),
    Case("a job that is already gone", {"jobId": "demo-gone"}, "AlreadyDeleted"),
    Case("a job already being deleted", {"jobId": "demo-deleting"}, "DeletionConfirmed"),
    Case("a job whose tasks never terminate", {"jobId": "demo-stuck"}, "DeletionStuck"),
    Case(
        "a protected job (stale If-Match)",
        {"jobId": "demo-protected", "ifMatch": "0x8D0000000000001"},
        "PreconditionFailed",
    ),
    Case("a misspelt precondition", {"jobId": "demo-typo", "ifmatch": "0x8D0000000000001"}, "InvalidMessage"),
    Case("throttled once (429, Retry-After 1)", {"jobId": "demo-throttled"}, "DeletionConfirmed"),
    Case("Batch busy for a while (503)", {"jobId": "demo-busy"}, "DeletionConfirmed"),
    Case("a role assignment still applying (403 for 3 s)", {"jobId": "demo-new-role"}, "DeletionConfirmed"),
    Case("no permission on the account (403 for good)", {"jobId": "demo-forbidden"}, "RetriesExhausted"),
    Case("an account that refuses Entra ID (401)", {"jobId": "demo-unauthenticated"}, "BatchRejected"),
]


def seed(batch: BatchEmulator) -> None:
    batch.configure(deleteDelayMs=0)
    for job in (
        "demo-nightly-42",
        "demo-protected",
        "demo-typo",
        "demo-throttled",
        "demo-busy",
        "demo-new-role",
        "demo-forbidden",
        "demo-unauthenticated",
    ):
        batch.add_job(job)
    # Stays `deleting` for ever: still there at each verification, DeletionStuck once
    # VERIFY_DELETION_TIMEOUT (3 s here) has passed.
    batch.add_job("demo-stuck", deleteStuck=True)
    batch.add_fault(match={"jobId": "demo-throttled"}, status=429, code="TooManyRequests", retryAfter="1")
    # Three answers of 503: the first attempt and both quick retries, so a delayed retry copy takes over.
    batch.add_fault(match={"jobId": "demo-busy"}, status=503, code="ServerBusy", times=3)
    batch.add_fault(match={"jobId": "demo-forbidden"}, status=403, code="AuthorizationFailure", times=None)
    batch.add_fault(
        match={"jobId": "demo-unauthenticated"}, status=401, code="AuthenticationFailed", times=None
    )
    # 403 for 3 s from the first request, as Batch answers until a new role assignment applies (minutes, in
    # Azure): the request waits for it on delayed retries (RETRY_DELAYS 2,2 here) and then deletes.
    batch.add_fault(
        match={"jobId": "demo-new-role"}, status=403, code="AuthorizationFailure", times=None, forSeconds=3
    )


def outcomes(log_file: Path) -> list[dict[str, Any]]:
    if not log_file.exists():
        return []
    entries = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    return [e["customDimensions"] for e in entries if e.get("logger") == "delete_job"]


def causal_order(record: dict[str, Any]) -> tuple[int, int]:
    """Where a record stands in its request's story: the original delivery, then the delayed retries,
    then the verifications, each by number. The log's order is not the story's: an invocation logs its
    record after scheduling the next message, and on a busy machine that message's own record can be
    written first (a 1 s verification, say)."""
    _, _, suffix = str(record["messageId"]).rpartition(":")
    for stage, name in enumerate(("retry", "verify"), start=1):
        if suffix.startswith(name) and suffix[len(name) :].isdigit():
            return stage, int(suffix[len(name) :])
    return 0, 0


def run(out: Any = sys.stdout, timeout: float = 60.0) -> int:
    started = time.monotonic()
    env = dict(os.environ)
    apply_local_settings(ROOT, ROOT / "local.settings.sample.json", env)
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        print("Starting the emulators (Batch, managed identity, Service Bus) on free ports...", file=out)
        settings = start_all(env, stack, free_ports=True)
        log_file = Path(tmp) / "host-log.jsonl"
        empty = Path(tmp) / "local.settings.json"
        empty.write_text('{"Values": {}}')
        app_env = {
            **{k: env[k] for k in ("DELETION_QUEUE", "DEAD_LETTER_QUEUE")},
            **settings,
            "RETRY_DELAYS": "2,2",
            "QUICK_RETRY_DELAYS": "0.2,0.4",
            "VERIFY_DELETION_AFTER": "1",
            "VERIFY_DELETION_TIMEOUT": "3",
        }
        batch = BatchEmulator(settings["BATCH_ENDPOINT"])
        seed(batch)
        print("Starting the local Functions host with function_app...", file=out)
        stack.enter_context(
            start(
                "emulators.host",
                "--app-dir",
                str(ROOT),
                "--settings",
                str(empty),
                "--log-file",
                str(log_file),
                # DEMO_TELEMETRY=- (stderr) or a file: the app's OpenTelemetry spans, records and metrics
                *(("--telemetry", env["DEMO_TELEMETRY"]) if env.get("DEMO_TELEMETRY") else ()),
                env=app_env,
                ready_timeout=60,
            )
        )
        # Seeded now, not with the others: mid-deletion for 3 s more (VERIFY_DELETION_TIMEOUT). The
        # request, taken at t < 3 s, finds it `deleting` (AlreadyDeleting); the last look, at t + 3 s,
        # finds it gone (DeletionConfirmed). With 1 s, a busy machine took the request after the job had
        # gone: AlreadyDeleted.
        batch.add_job("demo-deleting", state="deleting", deleteDelayMs=3000)
        ids: dict[str, Case] = {}
        with (
            ServiceBusClient.from_connection_string(settings["ServiceBusConnection"]) as client,
            client.get_queue_sender(env["DELETION_QUEUE"]) as sender,
        ):
            for case in CASES:
                message_id = f"demo-{uuid.uuid4().hex[:8]}"
                ids[message_id] = case
                sender.send_messages(
                    ServiceBusMessage(
                        json.dumps(case.body), message_id=message_id, content_type="application/json"
                    )
                )
        print(f"Sent {len(CASES)} deletion requests; waiting until every one is settled...\n", file=out)
        deadline = time.monotonic() + timeout
        story: dict[str, list[dict[str, Any]]] = {}
        while time.monotonic() < deadline:
            story = {}
            for record in outcomes(log_file):
                first = str(record["messageId"]).split(":retry")[0].split(":verify")[0]
                story.setdefault(first, []).append(record)
            for steps in story.values():
                steps.sort(key=causal_order)  # stable: redeliveries of one message stay in log order
            if all(story.get(mid) and story[mid][-1]["outcome"] == c.final for mid, c in ids.items()):
                break
            time.sleep(0.1)
        failed = 0
        print(f"{'request':46} {'job':20} what happened", file=out)
        for message_id, case in ids.items():
            steps = story.get(message_id, [])
            path = (
                " -> ".join(
                    f"{s['outcome']}"
                    + (
                        f" ({s['httpStatus']} {s.get('batchErrorCode') or ''})".replace(" )", ")")
                        if s.get("httpStatus")
                        else ""
                    )
                    for s in steps
                )
                or "(nothing yet)"
            )
            ok = bool(steps) and steps[-1]["outcome"] == case.final
            failed += not ok
            expected = "" if ok else f"   <-- expected {case.final}"
            print(f"{case.title:46} {case.body['jobId']:20} {path}{expected}", file=out)
        print("\nThe dead-letter queue, as an operator sees it:", file=out)
        out.flush()
        cli = subprocess.run(
            [sys.executable, "-m", "deleter_cli", "dead-letters", "list"],
            # captured, so not a terminal: tell it the terminal's real width
            env={
                **env,
                **app_env,
                "PYTHONPATH": str(ROOT),
                "COLUMNS": str(shutil.get_terminal_size().columns),
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        print(cli.stdout.rstrip() or cli.stderr.rstrip(), file=out)
        print("\nStopping everything...", file=out)
    print(
        f"Done in {time.monotonic() - started:.0f} s: {len(CASES) - failed} of {len(CASES)} as expected.",
        file=out,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(run())
    except KeyboardInterrupt:  # Ctrl-C: everything it started was stopped on the way out
        print("\nInterrupted; the emulators and the host were stopped.", file=sys.stderr)
        sys.exit(130)
