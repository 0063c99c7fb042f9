"""Concurrent saves of a prompt template's versions, on the served service (each request its
own transaction): every save gets the next number, none fails (Langfuse answered 500)."""

import asyncio

import httpx
import pytest

from tests.runs.conftest import Service

pytestmark = pytest.mark.asyncio(loop_scope="session")

VARIABLES = {"type": "object", "properties": {"topic": {"type": "string"}}}


async def test_concurrent_saves_each_get_the_next_number(
    http: httpx.AsyncClient, service: Service
) -> None:
    created = await http.post(
        f"{service.base_url}/prompt-templates",
        json={"name": "Busy", "kind": "user", "text": "First {{topic}}", "variables": VARIABLES},
        headers=service.headers(),
    )
    assert created.status_code == 201, created.text
    versions = f"{service.base_url}/prompt-templates/{created.json()['id']}/versions"

    saved = await asyncio.gather(
        *(
            http.post(
                versions,
                json={"text": f"Variant {i}: {{{{topic}}}}", "variables": VARIABLES},
                headers=service.headers(),
            )
            for i in range(12)
        ),
        # The same text twice at once: one version.
        *(
            http.post(
                versions,
                json={"text": "Twice {{topic}}", "variables": VARIABLES},
                headers=service.headers(),
            )
            for _ in range(2)
        ),
    )

    assert sorted(response.status_code for response in saved) == [200] + [201] * 13
    numbers = sorted({response.json()["version"] for response in saved})
    assert numbers == list(range(2, 15))
    template = await http.get(
        f"{service.base_url}/prompt-templates/{created.json()['id']}", headers=service.headers()
    )
    assert template.json()["latest_version"] == 14
