"""Tenant isolation, checked for every route by the machine.

Every operation of the OpenAPI document that takes an id is called with organization A's
objects by organization B's admin and B's member, against the live service: the answer is
404 (422 where a body is refused before any lookup), no answer carries A's data, and A's
rows in every table with an `organization_id` (found from the catalog) are the same
afterwards. A new route whose ids have no object here, or whose body has no example, fails
the test until it is added: nothing slips past.

Admin operations answer a member 403 before looking anything up, whatever the id, so the
member's answer for A's object must be exactly the answer for an id that does not exist:
it tells nothing about A. Inside one organization, a member on an admin operation is 403 and
changes nothing.
"""

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import fields
from typing import Any

import httpx
import psycopg
import pytest

from tests.contract.live import LiveService, Objects, make_objects

A, B = "org_iso_a", "org_iso_b"
MARKER = f"secret-of-a-{uuid.uuid4().hex[:8]}"
METHODS = {"get", "put", "post", "patch", "delete"}


def run_body(thread_id: str | None = None, text: str = "hello") -> dict[str, Any]:
    return {
        "threadId": thread_id or str(uuid.uuid4()),
        "runId": str(uuid.uuid4()),
        "state": {},
        "messages": [{"id": str(uuid.uuid4()), "role": "user", "content": text}],
        "tools": [],
        "context": [],
        "forwardedProps": {},
    }


def upload(name: str = "x.txt") -> dict[str, Any]:
    return {"files": {"file": (name, b"some text", "text/plain")}}


# A valid request body for each operation that takes one, so that the call gets as far as
# looking the object up. A new operation with a body needs its line here.
BODIES: dict[str, Any] = {
    "updateAgent": lambda: {"json": {"description": "changed by B"}},
    "createQuickTask": lambda: {"json": {"name": "B's task", "prompt": "Do it."}},
    "updateQuickTask": lambda: {"json": {"enabled": False}},
    "replaceAgentState": lambda: {"json": {"state": {"by": "B"}}},
    "patchAgentState": lambda: {
        "content": json.dumps([{"op": "add", "path": "/by", "value": "B"}]),
        "headers": {"content-type": "application/json-patch+json"},
    },
    "runAgent": lambda: {"json": run_body()},
    "copilotkitRun": lambda: {"json": run_body()},
    "copilotkitConnect": lambda: {"json": run_body()},
    "copilotkitStop": lambda: {"json": {}},
    "runQuickTask": lambda: {"json": {"parameters": {"topic": "B"}}},
    "addKnowledgeSource": lambda: {"json": {"kind": "text", "name": "B's", "text": "B's text"}},
    "uploadKnowledgeFile": upload,
    "uploadConversationFile": upload,
    "searchKnowledge": lambda: {"json": {"query": "holidays"}},
    "updateConversation": lambda: {"json": {"title": "changed by B"}},
    "createAgent": lambda: {"json": {"slug": f"b-{uuid.uuid4().hex[:8]}", "name": "B's"}},
    "createModel": lambda: {
        "json": {
            "name": f"B's {uuid.uuid4().hex[:8]}",
            "provider": "openai",
            "provider_model": "gpt-b",
        }
    },
    "updateModel": lambda: {"json": {"name": "changed by B", "api_key": "sk-of-b-0000000"}},
    "updateOrganization": lambda: {"json": {"time_zone": "Asia/Tokyo"}},
    "addPrice": lambda: {"json": {"input_micro_usd": 0, "output_micro_usd": 0}},
    "createBudget": lambda: {"json": {"metric": "cost", "limit": 1_000_000}},
    "updateBudget": lambda: {"json": {"limit": 1}},
    "createPromptTemplate": lambda: {
        "json": {"name": f"B's {uuid.uuid4().hex[:8]}", "kind": "user", "text": "Hi"}
    },
    "savePromptTemplateVersion": lambda: {"json": {"text": "changed by B"}},
    "setPromptTemplateLabel": lambda: {"json": {"version": 1}},
    "renderPromptTemplate": lambda: {"json": {"variables": {"topic": "B"}}},
}

# Tables whose rows belong to an organization or the platform (`owner_organization_id`).
OWNED_TABLES = ("agents", "models", "model_prices", "secrets", "data_keys")


def operations(live: LiveService) -> list[tuple[str, str, dict[str, Any]]]:
    document = httpx.get(f"{live.base_url}/openapi.json").json()
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def is_admin_only(operation: dict[str, Any]) -> bool:
    forbidden = operation["responses"].get("403", {}).get("description", "")
    return "`admin-required`" in forbidden


class TenantRows:
    """A's rows in every table with an `organization_id`, read past row-level security (the
    owner role), as counts and checksums."""

    def __init__(self, live: LiveService, clerk_id: str) -> None:
        self.url = live.service.owner_url
        with psycopg.connect(self.url) as conn:
            found = conn.execute("SELECT id FROM organizations WHERE clerk_id = %s", (clerk_id,))
            row = found.fetchone()
            assert row is not None
            self.organization_id = row[0]
            self.tables = [
                name
                for (name,) in conn.execute(
                    "SELECT table_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND column_name = 'organization_id' "
                    "ORDER BY table_name"
                )
            ]
        assert {"agents", "conversations", "messages", "files", "embeddings"} - {
            *self.tables,
            "agents",
        } == set()

    def snapshot(self) -> dict[str, tuple[int, str]]:
        checksums = {}
        with psycopg.connect(self.url) as conn:
            for table, column in [
                *((t, "organization_id") for t in self.tables),
                *((t, "owner_organization_id") for t in OWNED_TABLES),
                ("organizations", "id"),  # its own settings (the time zone)
            ]:
                row = conn.execute(
                    f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), "
                    f"'')) FROM {table} t WHERE {column} = %s",
                    (self.organization_id,),
                ).fetchone()
                assert row is not None
                checksums[f"{table}.{column}"] = (row[0], row[1])
        return checksums


@pytest.fixture(scope="module")
def a_objects(live: LiveService) -> Objects:
    make_objects(live, B, marker="b-objects")  # B exists, with members, and objects of its own
    return make_objects(live, A, marker=MARKER)


def path_for(path: str, objects: Objects, run_id: str) -> str:
    ids = {**objects.ids(), "run_id": run_id}
    for name in _names(path):
        assert name in ids, f"{path}: no object of organization A for `{name}`: add one here"
        path = path.replace("{" + name + "}", ids[name])
    return path


def _names(path: str) -> Iterator[str]:
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            yield part[1:-1]


def call(
    http: httpx.Client, method: str, path: str, operation: dict[str, Any], token: str
) -> httpx.Response:
    kwargs: dict[str, Any] = {}
    if "requestBody" in operation and operation["operationId"] != "receiveClerkWebhook":
        body = BODIES.get(operation["operationId"])
        assert body is not None, f"{operation['operationId']}: add a valid body to BODIES"
        kwargs = body()
    headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {token}"}
    return http.request(method, path, headers=headers, **kwargs)


@pytest.fixture
def slow_run(live: LiveService, a_objects: Objects) -> Iterator[str]:
    """A run of A's admin, streaming while the test calls (the fake model writes slowly)."""
    body = run_body(text="go slowly")
    started = threading.Event()

    def stream() -> None:
        with (
            httpx.Client(base_url=live.base_url, timeout=60) as http,
            http.stream(
                "POST",
                f"/agents/{a_objects.agent_id}/runs",
                json=body,
                headers=live.headers("admin", A),
            ) as response,
        ):
            for line in response.iter_lines():
                if "TEXT_MESSAGE_CONTENT" in line:
                    started.set()

    thread = threading.Thread(target=stream)
    thread.start()
    assert started.wait(30), "A's run did not start streaming"
    yield str(body["runId"])
    thread.join(60)


def test_organization_b_reaches_none_of_organization_as_objects(
    live: LiveService, a_objects: Objects
) -> None:
    rows = TenantRows(live, A)
    before = rows.snapshot()
    missing_run = str(uuid.uuid4())
    checked = 0
    with httpx.Client(base_url=live.base_url, timeout=60) as http:
        for method, template, operation in operations(live):
            if "{" not in template or operation["operationId"] == "cancelRun":
                continue
            path = path_for(template, a_objects, missing_run)
            for role in ("admin", "member"):
                answer = call(http, method, path, operation, live.token(role, B))
                where = f"{role} of B: {method} {path}"
                assert MARKER not in answer.text, where
                if role == "member" and is_admin_only(operation):
                    nowhere = path_for(
                        template, Objects(*[str(uuid.uuid4())] * len(fields(Objects))), missing_run
                    )
                    unknown = call(http, method, nowhere, operation, live.token(role, B))
                    assert (answer.status_code, answer.json()["type"]) == (
                        unknown.status_code,
                        unknown.json()["type"],
                    ), where
                    assert answer.status_code == 403, where
                else:
                    assert answer.status_code in (404, 422), (where, answer.text)
                    if answer.status_code == 422:
                        assert "body" in json.dumps(answer.json()["errors"]), where
                checked += 1
    assert checked > 40
    assert rows.snapshot() == before


def test_organization_b_cannot_cancel_organization_as_run(
    live: LiveService, a_objects: Objects, slow_run: str
) -> None:
    with httpx.Client(base_url=live.base_url, timeout=60) as http:
        for role in ("admin", "member"):
            answer = http.post(f"/runs/{slow_run}/cancel", headers=live.headers(role, B))
            assert answer.status_code == 404, answer.text
    # A's run goes on to the end of its answer.
    rows = TenantRows(live, A)
    with psycopg.connect(rows.url) as conn:
        for _ in range(200):
            row = conn.execute(
                "SELECT status FROM messages WHERE run_id = %s AND role = 'assistant'",
                (slow_run,),
            ).fetchone()
            if row is not None and row[0] != "streaming":
                break
            threading.Event().wait(0.1)
    assert row is not None and row[0] == "complete"


def test_ids_in_bodies_reach_none_of_organization_as_objects(
    live: LiveService, a_objects: Objects
) -> None:
    """Ids that arrive in bodies, not paths: B's own agent with A's conversation. As a
    threadId, A's conversation id names a thread of B's own (thread ids are unique per
    organization, migration f4fa07f03acc): B's runs and connect go to it and show nothing of
    A's, and B deleting it deletes only B's."""
    b_agent = make_objects(live, B, marker="b-own").agent_id
    rows = TenantRows(live, A)
    before = rows.snapshot()
    admin = live.headers("admin", B)
    with httpx.Client(base_url=live.base_url, timeout=60) as http:
        created = http.post("/conversations", json={"agent_id": a_objects.agent_id}, headers=admin)
        searched = http.post(
            f"/agents/{b_agent}/search",
            json={"query": "holidays", "conversation_id": a_objects.conversation_id},
            headers=admin,
        )
        ran = http.post(
            f"/agents/{b_agent}/runs", json=run_body(a_objects.conversation_id), headers=admin
        )
        copilotkit = [
            http.post(
                f"/copilotkit/agent/{b_agent}/{route}",
                json=run_body(a_objects.conversation_id),
                headers=admin,
            )
            for route in ("run", "connect")
        ]
        deleted = http.delete(f"/conversations/{a_objects.conversation_id}", headers=admin)
    assert deleted.status_code == 204, deleted.text
    for answer in (created, searched):
        assert answer.status_code == 404, answer.text
    for answer in (ran, *copilotkit):
        assert answer.status_code == 200, answer.text
    for answer in (created, searched, ran, *copilotkit):
        assert MARKER not in answer.text
    assert rows.snapshot() == before


def test_a_member_on_an_admin_operation_is_403_and_changes_nothing(
    live: LiveService, a_objects: Objects
) -> None:
    rows = TenantRows(live, A)
    before = rows.snapshot()
    checked = 0
    with httpx.Client(base_url=live.base_url, timeout=60) as http:
        for method, template, operation in operations(live):
            if not is_admin_only(operation):
                continue
            path = path_for(template, a_objects, str(uuid.uuid4()))
            answer = call(http, method, path, operation, live.token("member", A))
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json()["type"] == "/problems/admin-required"
            checked += 1
    assert checked >= 10
    assert rows.snapshot() == before
