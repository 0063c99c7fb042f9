"""There is no container engine here to run the Dockerfile and docker-compose.yml, so check
what can be checked without one: every command they run is a real `ajc` command, every
setting they pass is a real setting, and the image carries what the commands need."""

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from app.cli import build_parser
from app.core.embedded import to_async_url
from app.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = sorted(name for name, service in SERVICES.items() if service.get("build") == ".")
API_SERVICES = [name for name in APP_SERVICES if SERVICES[name]["command"][1] == "serve"]
WORKER_SERVICES = [name for name in APP_SERVICES if SERVICES[name]["command"][1] == "worker"]
SETTINGS = {name.upper() for name in Settings.model_fields}
# What an operator would put in .env for the `${NAME:?...}` the compose file asks for.
EXAMPLE_VALUES = {"CLERK_ISSUER": "https://clerk.example.com"}


def filled_in(value: str) -> str:
    """`value` as compose would pass it, every `${NAME...}` given an operator's value."""
    return re.sub(
        r"\$\{([A-Z0-9_]+)[^}]*\}",
        lambda found: EXAMPLE_VALUES.get(found[1], f"example-{found[1].lower()}"),
        value,
    )


def test_compose_has_the_shape_of_several_machines() -> None:
    assert API_SERVICES == ["api-1", "api-2"]
    assert WORKER_SERVICES == ["worker-1", "worker-2"]
    assert set(APP_SERVICES) == {"migrate", *API_SERVICES, *WORKER_SERVICES}
    assert SERVICES["migrate"]["command"] == ["ajc", "migrate"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_service_runs_a_real_ajc_command(service: str) -> None:
    command = SERVICES[service]["command"]
    assert command[0] == "ajc"
    build_parser().parse_args(command[1:])  # exits on an unknown command or option


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_service_passes_only_known_settings(service: str) -> None:
    environment = SERVICES[service]["environment"]
    assert set(environment) <= SETTINGS, set(environment) - SETTINGS
    assert environment["APP_ENV"] == "production"
    assert to_async_url(environment["DATABASE_URL"]).startswith("postgresql+asyncpg://")


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_service_settings_pass_the_production_checks(service: str) -> None:
    """Production refuses development identity and the embedded database: a setting left
    out here stops the container at its start."""
    environment = SERVICES[service]["environment"]
    values = {name.lower(): filled_in(str(value)) for name, value in environment.items()}
    settings = Settings.model_validate(values)
    assert settings.app_env == "production"
    assert not settings.development_identity


def test_compose_every_process_shares_one_database() -> None:
    urls = {SERVICES[service]["environment"]["DATABASE_URL"] for service in APP_SERVICES}
    assert len(urls) == 1
    assert urlsplit(filled_in(urls.pop())).hostname == "db"


def test_compose_api_and_workers_wait_for_the_migration() -> None:
    for service in [*API_SERVICES, *WORKER_SERVICES]:
        depends = SERVICES[service]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["db"]["image"].startswith("pgvector/pgvector:pg16")


def test_compose_api_and_workers_keep_files_in_the_seaweedfs_service() -> None:
    seaweedfs = SERVICES["seaweedfs"]
    options = dict(option.split("=", 1) for option in seaweedfs["command"] if "=" in option)
    assert "-s3" in seaweedfs["command"]
    config = next(c for c in COMPOSE["configs"] if c == "seaweedfs-s3")
    assert seaweedfs["configs"][0] == {"source": config, "target": options["-s3.config"]}
    identities = json.loads(COMPOSE["configs"][config]["content"])["identities"]
    buckets = set()
    for service in [*API_SERVICES, *WORKER_SERVICES]:
        environment = SERVICES[service]["environment"]
        assert environment["STORAGE_BACKEND"] == "s3"
        assert environment["S3_ENDPOINT_URL"] == f"http://seaweedfs:{options['-s3.port']}"
        buckets.add((environment["S3_BUCKET"], environment.get("S3_KEY_PREFIX", "")))
        credentials = {
            "accessKey": environment["S3_ACCESS_KEY_ID"].split(":?")[0] + "}",
            "secretKey": environment["S3_SECRET_ACCESS_KEY"].split(":?")[0] + "}",
        }
        assert credentials in identities[0]["credentials"]
        assert "seaweedfs" in SERVICES[service]["depends_on"]
    assert len(buckets) == 1  # one bucket and prefix: every process sees every file


def test_compose_api_services_run_no_job_worker_of_their_own() -> None:
    for service in API_SERVICES:
        assert SERVICES[service]["environment"]["RUN_WORKER_IN_PROCESS"] == "false"
    # Each API container on a host port of its own.
    ports = [port for service in API_SERVICES for port in SERVICES[service]["ports"]]
    assert len({port.split(":")[0] for port in ports}) == len(API_SERVICES)


def test_compose_workers_skip_the_images_http_health_check() -> None:
    """The image's HEALTHCHECK asks ajc serve's /healthz; a worker answers no HTTP."""
    for service in WORKER_SERVICES:
        assert SERVICES[service]["healthcheck"] == {"disable": True}


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
