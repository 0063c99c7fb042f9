import pytest

from tests.contract.fuzzing import BUDGET


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-long",
        action="store_true",
        help="fuzz ten times as many cases, with the coverage phase and a random seed",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--fuzz-long"):
        BUDGET.make_long()
