"""The secrets canary for a whole pytest session (a plugin: ``tests/conftest.py`` loads it).

At start-up the session puts a fresh ``CANARY-<hex>`` in ``EMULATOR_CANARY`` and a report file in
``EMULATOR_CANARY_REPORT`` (``emulators.canary``): every process the tests start inherits both, the
identity endpoint embeds the canary in every token it issues, and the emulators and the local host
report where they see it other than a Batch ``Authorization`` header. In this process, every log record
of every logger down to DEBUG (message, arguments, custom dimensions, the exception and its chain),
every test report (failure text, captured output and logs), every warning, and every OpenTelemetry span,
log record and metric the app exports (``emulators.telemetry``) is checked. Any sighting,
here or in the report file, fails the run and is listed at the end; the canary itself is never printed.

Under pytest-xdist the controller makes the canary and the report file and hands both to every worker
(``pytest_configure_node``): the processes a worker's tests start inherit them, the worker watches its own
log records and writes what it sees to the report file, and the controller checks the test reports and
warnings the workers send it, reads the report file, and fails the run.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytest

from emulators.canary import CANARY_ENV, REPORT_ENV, CanaryLogHandler

__all__ = ["CanaryWatch"]

_PLACEHOLDER = "<canary>"


class _NaturalLevel(logging.Filter):
    """Lets through only what pytest's own log capture would have seen had the root logger not been
    lowered to DEBUG for the watch: reports and log files keep their usual size."""

    def __init__(self, root_level: int) -> None:
        super().__init__()
        self._root_level = root_level

    def filter(self, record: logging.LogRecord) -> bool:
        root = logging.getLogger()
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None and logger is not root:
            if logger.level:
                return record.levelno >= logger.level
            logger = logger.parent
        level = root.level  # a test's caplog.set_level(...) counts; the watch's own DEBUG does not
        return record.levelno >= (self._root_level if level == logging.DEBUG else level)


class CanaryWatch:
    """One session's canary, its report file, and everything seen so far."""

    def __init__(self, canary: str, report_file: Path, *, worker: bool = False) -> None:
        self.canary = canary
        self.report_file = report_file
        self.worker = worker  # an xdist worker: sightings go to the report file, the controller judges
        self.sightings: list[str] = []
        self._report_read = 0  # bytes of the report file already turned into sightings
        self._test: str | None = None
        self._handler = CanaryLogHandler("this test process", canary, self._seen)
        self._saved_env = {name: os.environ.get(name) for name in (CANARY_ENV, REPORT_ENV)}
        self._root_level = logging.getLogger().level
        self._filter = _NaturalLevel(self._root_level)
        self._filtered: list[logging.Handler] = []

    @classmethod
    def begin(cls) -> CanaryWatch:
        """A fresh canary (always: a session started by a test must not write to its parent's report)."""
        handle, name = tempfile.mkstemp(prefix="canary-report-", suffix=".txt")
        os.close(handle)
        return cls(f"CANARY-{secrets.token_hex(16)}", Path(name))._watch()

    @classmethod
    def join(cls, canary: str, report_file: Path) -> CanaryWatch:
        """An xdist worker's watch over its controller's canary and report file."""
        return cls(canary, report_file, worker=True)._watch()

    def _watch(self) -> CanaryWatch:
        os.environ[CANARY_ENV] = self.canary
        os.environ[REPORT_ENV] = str(self.report_file)
        root = logging.getLogger()
        root.addHandler(self._handler)
        root.setLevel(logging.DEBUG)  # every logger without a level of its own now makes DEBUG records
        return self

    def end(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self._handler)
        root.setLevel(self._root_level)
        for handler in self._filtered:
            handler.removeFilter(self._filter)
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if not self.worker:
            self.report_file.unlink(missing_ok=True)

    def _where(self) -> str:
        return f"during {self._test}" if self._test else "outside any test"

    def _seen(self, where: str) -> None:
        sighting = f"{where.replace(self.canary, _PLACEHOLDER)} ({self._where()})"
        if self.worker:  # one short append, as every other watcher writes (emulators/canary.py)
            with self.report_file.open("a", encoding="utf-8") as out:
                out.write(f"xdist worker pid {os.getpid()}: {' '.join(sighting.split())}\n")
        else:
            self.sightings.append(sighting)

    def check(self, text: str, where: str) -> None:
        """A sighting if ``text`` (something a person or a log store would read) holds the canary."""
        if self.canary in text:
            self._seen(where)

    def _read_report(self, when: str) -> None:
        """New lines of the report file (written by other processes) become sightings."""
        try:
            if self.report_file.stat().st_size <= self._report_read:
                return
            with self.report_file.open("rb") as report:
                report.seek(self._report_read)
                data = report.read()
        except FileNotFoundError:
            return
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next look
        self._report_read += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            self.sightings.append(f"{line.replace(self.canary, _PLACEHOLDER)} (noticed {when})")

    # --- pytest hooks ----------------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        plugin = session.config.pluginmanager.get_plugin("logging-plugin")
        for name in ("report_handler", "log_file_handler"):
            handler = getattr(plugin, name, None)
            if isinstance(handler, logging.Handler):
                handler.addFilter(self._filter)
                self._filtered.append(handler)

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self._test = nodeid

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist (controller): every worker watches for this session's canary, into this report file."""
        node.workerinput[CANARY_ENV] = self.canary
        node.workerinput[REPORT_ENV] = str(self.report_file)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.worker:  # the controller gets this report too, and checks it
            return
        self.check(report.longreprtext, f"the {report.when} report of {report.nodeid}")
        for title, content in report.sections:
            if title.startswith("Captured ") and not title.endswith(f" {report.when}"):
                continue  # an earlier phase's output, already looked at in that phase's report
            self.check(content, f"{title!r} of {report.nodeid}")

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        if not self.worker:
            self._read_report(f"after {nodeid}")
        self._test = None

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if not self.worker:
            self.check(report.longreprtext, f"the collection report of {report.nodeid or 'the session'}")

    def pytest_warning_recorded(self, warning_message: warnings.WarningMessage, nodeid: str) -> None:
        if not self.worker:
            self.check(str(warning_message.message), f"a warning in {nodeid or 'the session'}")

    @pytest.hookimpl(tryfirst=True)  # before junitxml and the terminal summary, which then show it
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.worker:
            return
        self._read_report("at the end of the session")
        if not self.sightings:
            return
        lines = [
            f"{len(self.sightings)} sighting(s) of the secrets canary: a token (every token here carries it)",
            "reached a log, a report, an exception text or an emulator other than in a Batch Authorization",
            "header. Where:",
            *(f"  {sighting}" for sighting in self.sightings),
        ]
        report = pytest.CollectReport("secrets-canary", "failed", "\n".join(lines), [])
        session.config.hook.pytest_collectreport(report=report)
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config: pytest.Config) -> None:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)  # set on an xdist worker
    if workerinput is not None and CANARY_ENV in workerinput:
        watch = CanaryWatch.join(workerinput[CANARY_ENV], Path(workerinput[REPORT_ENV]))
    else:
        watch = CanaryWatch.begin()
    config.pluginmanager.register(watch, "canary-watch")
    config.add_cleanup(watch.end)
    # The process's OpenTelemetry providers: every processor a test creates without telemetry of its own
    # exports through them (shared.telemetry.from_settings), and each span, log record and metric label
    # is checked for the canary (emulators/telemetry.py).
    from emulators.telemetry import install  # noqa: PLC0415 - after the canary is in the environment

    config.add_cleanup(install("this test process's telemetry", metric_interval_ms=5_000))
