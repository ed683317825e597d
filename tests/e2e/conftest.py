"""End-to-end failures come with what the host saw: a failing test that used a `Deployment` gets its
host's counters and the last lines the host wrote to stderr as report sections, so a failure seen once
in CI can be read without reproducing it."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.e2e.deployment import Deployment


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    for name, value in funcargs.items():
        if isinstance(value, Deployment):
            report.sections.append((f"{name}: the host's state", value.describe()))
