"""Prompt templates as admins keep them and members render them: immutable versions numbered
in order (the same text is the same version, concurrent saves each get a number), labels
that move, the plain engine's `{{variable}}` and nothing else, and the Jinja engine's
sandbox refusing the known escapes."""

from typing import Any

import httpx
import pytest

from tests.clerk import FakeClerk
from tests.usage.ledger import admin, member

TOPIC = {
    "type": "object",
    "properties": {
        "topic": {"type": "string", "description": "What to summarise."},
        "words": {"type": "integer", "default": 50, "minimum": 1},
    },
    "required": ["topic"],
}


async def create(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: Any
) -> httpx.Response:
    body = {
        "name": "Summary",
        "kind": "quick_task",
        "text": "Summarise {{topic}} in {{ words }} words.",
        "variables": TOPIC,
        **fields,
    }
    return await client.post("/prompt-templates", json=body, headers=headers)


async def render(
    client: httpx.AsyncClient, headers: dict[str, str], template_id: str, **body: Any
) -> httpx.Response:
    return await client.post(f"/prompt-templates/{template_id}/render", json=body, headers=headers)


async def test_versions_are_immutable_numbered_and_the_same_text_is_the_same_version(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    headers = admin(fake_clerk)
    created = await create(client, headers)
    assert created.status_code == 201, created.text
    template = created.json()
    assert (template["latest_version"], template["labels"], template["engine"]) == (
        1,
        {},
        "plain",
    )
    versions = f"/prompt-templates/{template['id']}/versions"

    again = await client.post(
        versions,
        json={"text": "Summarise {{topic}} in {{ words }} words.", "variables": TOPIC},
        headers=headers,
    )
    assert again.status_code == 200  # the version that has it
    assert again.json()["version"] == 1
    second = await client.post(
        versions, json={"text": "Sum up {{topic}}.", "variables": TOPIC}, headers=headers
    )
    assert second.status_code == 201
    assert second.json()["version"] == 2
    assert second.json()["content_hash"] != again.json()["content_hash"]

    first = await client.get(f"{versions}/1", headers=member(fake_clerk))
    assert first.status_code == 200
    assert first.json()["text"] == "Summarise {{topic}} in {{ words }} words."
    assert (await client.get(f"{versions}/3", headers=headers)).status_code == 404
    taken = await create(client, headers)
    assert taken.status_code == 409
    assert taken.json()["type"] == "/problems/prompt-template-name-taken"


async def test_labels_point_at_versions_and_move(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    headers = admin(fake_clerk)
    template = (await create(client, headers)).json()
    base = f"/prompt-templates/{template['id']}"
    await client.post(
        f"{base}/versions", json={"text": "Sum up {{topic}}.", "variables": TOPIC}, headers=headers
    )
    labelled = await client.put(f"{base}/labels/production", json={"version": 1}, headers=headers)
    assert labelled.status_code == 200, labelled.text
    assert labelled.json()["labels"] == {"production": 1}
    production = await render(
        client, headers, template["id"], label="production", variables={"topic": "tea"}
    )
    latest = await render(client, headers, template["id"], variables={"topic": "tea"})
    assert (production.json()["version"], latest.json()["version"]) == (1, 2)

    moved = await client.put(f"{base}/labels/production", json={"version": 2}, headers=headers)
    assert moved.json()["labels"] == {"production": 2}
    for label, version, status in (("latest", 1, 422), ("staging", 9, 404), ("Bad Label", 1, 422)):
        refused = await client.put(
            f"{base}/labels/{label}", json={"version": version}, headers=headers
        )
        assert refused.status_code == status, (label, refused.text)
    assert (await client.delete(f"{base}/labels/production", headers=headers)).status_code == 204
    gone = await render(client, headers, template["id"], label="production", variables={})
    assert gone.status_code == 404
    assert gone.json()["type"] == "/problems/prompt-template-label-not-found"


async def test_the_plain_engine_substitutes_variables_and_nothing_else(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    headers = admin(fake_clerk)
    template = (await create(client, headers)).json()

    rendered = await render(
        client, member(fake_clerk), template["id"], variables={"topic": "<b>{% tea %}</b>"}
    )
    assert rendered.status_code == 200, rendered.text
    # No escaping, no logic: the value as it is; the default of `words` filled in.
    assert rendered.json()["text"] == "Summarise <b>{% tea %}</b> in 50 words."

    missing = await render(client, headers, template["id"], variables={"words": 3})
    assert missing.status_code == 422
    assert missing.json()["type"] == "/problems/missing-variables"
    assert "`topic`" in missing.json()["detail"]
    wrong = await render(client, headers, template["id"], variables={"topic": "x", "words": 0})
    assert wrong.status_code == 422
    assert wrong.json()["type"] == "/problems/invalid-variables"
    assert "words" in wrong.json()["detail"]


async def test_a_version_may_use_only_declared_variables(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    headers = admin(fake_clerk)
    for fields, words in (
        ({"text": "Hello {{name}}"}, "`name`"),
        ({"text": "Hi {{ who }}", "engine": "jinja"}, "`who`"),
        ({"text": "{% for %}", "engine": "jinja"}, "parse"),
        ({"variables": {"type": "array"}}, "object"),
        ({"variables": {"type": "object", "properties": {"a": {"type": "nope"}}}}, "JSON Schema"),
        ({"variables": {"type": "object", "properties": {}, "required": ["a"]}}, "`a`"),
    ):
        refused = await create(client, headers, name=f"Bad {words}", **fields)
        assert refused.status_code == 422, fields
        assert refused.json()["type"] == "/problems/invalid-prompt-template", fields
        assert words in refused.json()["detail"], (fields, refused.json()["detail"])


async def test_members_read_and_render_admins_write_other_organizations_see_nothing(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    template = (await create(client, admin(fake_clerk))).json()
    assert (await create(client, member(fake_clerk), name="Mine")).status_code == 403
    listed = await client.get("/prompt-templates", headers=member(fake_clerk))
    assert [item["id"] for item in listed.json()] == [template["id"]]
    other = admin(fake_clerk, "org_B")
    assert (
        await client.get(f"/prompt-templates/{template['id']}", headers=other)
    ).status_code == 404
    assert (await render(client, other, template["id"], variables={})).status_code == 404
    assert (await client.get("/prompt-templates", headers=other)).json() == []
    deleted = await client.delete(f"/prompt-templates/{template['id']}", headers=admin(fake_clerk))
    assert deleted.status_code == 204
    gone = await client.get(f"/prompt-templates/{template['id']}", headers=admin(fake_clerk))
    assert gone.status_code == 404


async def test_the_jinja_engine_renders_in_its_sandbox(
    client: httpx.AsyncClient, fake_clerk: FakeClerk
) -> None:
    headers = admin(fake_clerk)
    variables = {"type": "object", "properties": {"items": {"type": "array"}}}
    created = await create(
        client,
        headers,
        name="Listing",
        engine="jinja",
        text="{% for item in items %}- {{ item|upper }}\n{% endfor %}",
        variables=variables,
    )
    assert created.status_code == 201, created.text
    rendered = await render(client, headers, created.json()["id"], variables={"items": ["a", "b"]})
    assert rendered.json()["text"] == "- A\n- B\n"


ESCAPES = {
    "attribute walk to subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "globals through cycler": "{{ cycler.__init__.__globals__.os }}",
    "globals through lipsum": "{{ lipsum.__globals__['os'] }}",
    "globals through self": "{{ self.__init__.__globals__ }}",
    "str.format": "{{ '{0.__class__.__base__}'.format(1) }}",
    "format through attr (3.1.6)": "{{ ('{0.__class__}'|attr('format'))(1) }}",
    "stored format (3.1.5)": "{% set f = '{0.__class__}'.format %}{{ f(1) }}",
    "huge range": "{{ range(10**9)|list|length }}",
    "huge power": "{{ 2 ** 100000 }}",
    "huge repetition": "{{ 'a' * 10**9 }}",
    "huge filter argument": "{{ 'x'|center(1000000000) }}",
    "percent formatting": "{{ '%0999999999d' % 1 }}",
    "too long to render": "{% for i in range(10000) %}{% for j in range(10000) %}"
    "{% for k in range(10000) %}{% endfor %}{% endfor %}{% endfor %}",
    "too much output": "{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}",
}


@pytest.mark.parametrize("text", ESCAPES.values(), ids=ESCAPES.keys())
async def test_the_jinja_sandbox_refuses_the_known_escapes(
    client: httpx.AsyncClient, fake_clerk: FakeClerk, text: str
) -> None:
    headers = admin(fake_clerk)
    created = await create(
        client,
        headers,
        name="Escape",
        engine="jinja",
        text=text,
        variables={"type": "object", "properties": {}},
    )
    assert created.status_code == 201, created.text
    refused = await render(client, headers, created.json()["id"], variables={})
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"] == "/problems/render-refused"
