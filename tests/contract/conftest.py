from collections.abc import Iterator

import pytest

from tests import clerk
from tests.conftest import DatabaseUnderTest
from tests.contract.fuzzing import BUDGET, TALLY
from tests.contract.live import LiveService, live_service


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-long",
        action="store_true",
        help="fuzz ten times as many cases, with the coverage phase and a random seed",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--fuzz-long"):
        BUDGET.make_long()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.cases:
        statuses = ", ".join(f"{status}: {n}" for status, n in sorted(TALLY.by_status.items()))
        terminalreporter.write_line(
            f"fuzzing: {len(TALLY.operations)} operations, {TALLY.cases} cases ({statuses})"
        )


@pytest.fixture(scope="session")
def live(test_database: DatabaseUnderTest) -> Iterator[LiveService]:
    """One live service for the contract tests; each uses organizations of its own."""
    # Limits no fuzzing run reaches (each DELETE makes fresh objects), with the limiter on:
    # its statement runs on every limited call. tests/limits tests the limits themselves.
    unlimited = {
        f"rate_limit_{kind}_per_{scope}": 1_000_000
        for kind in ("runs", "uploads", "ingestions", "searches")
        for scope in ("user", "organization")
    }
    with live_service(
        test_database,
        "contract",
        clerk_webhook_signing_secret=clerk.WEBHOOK_SECRET,
        **unlimited,
    ) as service:
        yield service
