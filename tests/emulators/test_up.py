"""`python -m emulators up`: every stand-in the app needs, the settings to use, and a clean stop."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue

ROOT = Path(__file__).resolve().parents[2]


def test_up_starts_everything_prints_settings_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """All emulators answer on the printed settings; the queues are wired; SIGINT stops every child."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "emulators", "up", "--free-ports", "--app-dir", str(ROOT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        settings: dict[str, str] = {}
        deadline = time.monotonic() + 60
        for line in process.stdout:
            match = re.match(r"\s+export (\w+)='(.*)'$", line.rstrip("\n"))
            if match:
                settings[match.group(1)] = match.group(2)
            if line.startswith("Ctrl-C") or time.monotonic() > deadline:
                break
        assert set(settings) == {
            "BATCH_ENDPOINT",
            "BATCH_ACCOUNTS",
            "IDENTITY_ENDPOINT",
            "IDENTITY_HEADER",
            "ServiceBusConnection",
        }
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) == 4  # two Batch emulators, the identity endpoint, Service Bus
        assert httpx.get(settings["BATCH_ENDPOINT"] + "/_emulator/health").status_code == 200
        (second,) = json.loads(settings["BATCH_ACCOUNTS"]).values()
        assert httpx.get(second + "/_emulator/health").status_code == 200
        token = httpx.get(
            settings["IDENTITY_ENDPOINT"],
            params={"api-version": "2019-08-01", "resource": "https://batch.core.windows.net/"},
            headers={"X-IDENTITY-HEADER": settings["IDENTITY_HEADER"]},
        )
        assert token.status_code == 200
        # The deletion queue's dead letters are forwarded to the failure queue.
        with ServiceBusClient.from_connection_string(settings["ServiceBusConnection"]) as client:
            with client.get_queue_sender("batch-job-deletions") as sender:
                sender.send_messages(ServiceBusMessage("{}", message_id="up-1"))
            with client.get_queue_receiver("batch-job-deletions", max_wait_time=10) as receiver:
                (message,) = receiver.receive_messages(max_message_count=1, max_wait_time=10)
                receiver.dead_letter_message(message, reason="Test", error_description="forwarding")
            with client.get_queue_receiver("batch-job-deletions-failed", max_wait_time=10) as receiver:
                (forwarded,) = receiver.receive_messages(max_message_count=1, max_wait_time=10)
                assert forwarded.message_id == "up-1"
                assert forwarded.application_properties is not None
                assert forwarded.application_properties[b"DeadLetterSource"] == b"batch-job-deletions"
                receiver.complete_message(forwarded)
            with client.get_queue_receiver(
                "batch-job-deletions", sub_queue=ServiceBusSubQueue.DEAD_LETTER
            ) as receiver:
                assert list(receiver.peek_messages(max_message_count=5)) == []
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert alive == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Emulators stopped." in (process.stdout.read() if process.stdout else "")
    del gone


@pytest.mark.parametrize("missing", ["BATCH_ENDPOINT"])
def test_up_refuses_settings_it_cannot_honour(tmp_path: Path, missing: str) -> None:
    """A settings file without a required setting stops `up` with a message naming it."""
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    del values[missing]
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": values}))
    env = {k: v for k, v in os.environ.items() if k != missing}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "emulators", "up", "--free-ports", "--settings", str(settings)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert missing in result.stderr
