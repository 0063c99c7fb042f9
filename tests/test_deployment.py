"""There is no container engine here to run the Dockerfile and docker-compose.yml, so check
what can be checked without one: every command they run is a real `ajc` command, every
setting they pass is a real setting, and the image carries what the commands need."""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli import build_parser
from app.core.embedded import to_async_url
from app.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
APP_SERVICES = ("migrate", "api", "worker")
SETTINGS = {name.upper() for name in Settings.model_fields}


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_service_runs_a_real_ajc_command(service: str) -> None:
    command = COMPOSE["services"][service]["command"]
    assert command[0] == "ajc"
    build_parser().parse_args(command[1:])  # exits on an unknown command or option


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_service_passes_only_known_settings(service: str) -> None:
    environment = COMPOSE["services"][service]["environment"]
    assert set(environment) <= SETTINGS, set(environment) - SETTINGS
    assert environment["APP_ENV"] == "production"
    assert to_async_url(environment["DATABASE_URL"]).startswith("postgresql+asyncpg://")


def test_compose_api_and_worker_wait_for_the_migration() -> None:
    for service in ("api", "worker"):
        depends = COMPOSE["services"][service]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert COMPOSE["services"]["db"]["image"].startswith("pgvector/pgvector:pg16")


def test_compose_api_and_worker_keep_files_in_the_seaweedfs_service() -> None:
    seaweedfs = COMPOSE["services"]["seaweedfs"]
    options = dict(option.split("=", 1) for option in seaweedfs["command"] if "=" in option)
    assert "-s3" in seaweedfs["command"]
    config = next(c for c in COMPOSE["configs"] if c == "seaweedfs-s3")
    assert seaweedfs["configs"][0] == {"source": config, "target": options["-s3.config"]}
    identities = json.loads(COMPOSE["configs"][config]["content"])["identities"]
    for service in ("api", "worker"):
        environment = COMPOSE["services"][service]["environment"]
        assert environment["STORAGE_BACKEND"] == "s3"
        assert environment["S3_ENDPOINT_URL"] == f"http://seaweedfs:{options['-s3.port']}"
        assert environment["S3_BUCKET"]
        credentials = {
            "accessKey": environment["S3_ACCESS_KEY_ID"].split(":?")[0] + "}",
            "secretKey": environment["S3_SECRET_ACCESS_KEY"].split(":?")[0] + "}",
        }
        assert credentials in identities[0]["credentials"]
        assert "seaweedfs" in COMPOSE["services"][service]["depends_on"]


def test_compose_runs_one_worker_outside_the_api() -> None:
    assert COMPOSE["services"]["api"]["environment"]["RUN_WORKER_IN_PROCESS"] == "false"


def dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_dockerfile_runs_as_non_root_and_ships_the_migrations() -> None:
    instructions = dockerfile_instructions()
    assert any(line.startswith("USER ") and line != "USER root" for line in instructions)
    copied = {line.split()[-2] for line in instructions if line.startswith("COPY --chown")}
    assert {"alembic.ini", "alembic", "app"} <= copied
    cmd = next(line for line in reversed(instructions) if line.startswith("CMD "))
    command = json.loads(cmd.removeprefix("CMD "))
    assert command[0] == "ajc"
    build_parser().parse_args(command[1:])


def test_dockerfile_sets_only_known_settings() -> None:
    runtime_env = [line for line in dockerfile_instructions() if line.startswith("ENV ")][-1]
    names = {assignment.split("=")[0] for assignment in runtime_env.split()[1:]}
    python_env = {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}
    assert names - python_env <= SETTINGS, names - python_env - SETTINGS
