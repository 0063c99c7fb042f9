"""The README is the front door: its settings table and its commands must stay true."""

import argparse
import re
from pathlib import Path

from app.cli import build_parser
from app.core.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_lists_every_setting_with_its_default() -> None:
    rows = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| (.+?) \|", README, flags=re.MULTILINE))
    for name, field in Settings.model_fields.items():
        key = name.upper()
        assert key in rows, f"{key} is missing from the README's configuration table"
        default = field.get_default(call_default_factory=True)
        expected = "(unset)" if default is None else f"`{default}`"
        assert rows[key] == expected, f"{key}: README says {rows[key]}, code says {expected}"
    assert set(rows) <= {name.upper() for name in Settings.model_fields}


def test_readme_documents_every_command_and_only_real_ones() -> None:
    documented = set(re.findall(r"^\| `ajc ([a-z-]+)", README, flags=re.MULTILINE))
    subcommands = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    assert documented == set(subcommands.choices)
