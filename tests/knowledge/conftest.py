"""The knowledge tests that store files run on both storage backends (tests/conftest.py's
`storage_under_test`): the app's settings here choose each in turn."""

from pathlib import Path

import pytest

from app.core.settings import Settings
from tests.conftest import DatabaseUnderTest, StorageUnderTest


@pytest.fixture
def settings(
    test_database: DatabaseUnderTest, storage_under_test: StorageUnderTest, tmp_path: Path
) -> Settings:
    return test_database.settings(**storage_under_test.settings(tmp_path / "workspaces"))
