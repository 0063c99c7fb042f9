"""Quick tasks: named, pre-written prompts for an agent, set up by the organization's admins.

A quick task with a cron `schedule` runs on it for the admin who scheduled it (the worker's
scheduler reads `next_run_at`, computed here in the task's time zone). Members list the quick
tasks of the agents they may use.
"""

import re
import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import repository
from app.agents import service as agents_service
from app.agents.errors import (
    InvalidQuickTask,
    MissingQuickTaskParameters,
    QuickTaskNameTaken,
    QuickTaskNotFound,
)
from app.agents.models import AgentQuickTask
from app.agents.schemas import QuickTaskCreate, QuickTaskUpdate
from app.auth.identity import OrganizationPrincipal
from app.prompts import service as prompts_service
from app.prompts.schemas import TemplateReference

PLACEHOLDER = re.compile(r"\{(\w+)\}")


def render_prompt(task: AgentQuickTask, parameters: dict[str, Any]) -> str:
    """The task's prompt with `{name}` placeholders filled from `parameters`; a parameter
    the task's schema requires, or a placeholder with no value, is a 422."""
    required = task.parameters.get("required", []) if isinstance(task.parameters, dict) else []
    missing = sorted(
        {name for name in required if name not in parameters}
        | {name for name in PLACEHOLDER.findall(task.prompt) if name not in parameters}
    )
    if missing:
        raise MissingQuickTaskParameters(f"Missing parameters: {', '.join(missing)}.")
    return PLACEHOLDER.sub(lambda match: str(parameters[match.group(1)]), task.prompt)


async def prompt_for(
    session: AsyncSession, task: AgentQuickTask, parameters: dict[str, Any]
) -> tuple[str, uuid.UUID | None]:
    """What a run of the task says: its prompt filled in, or its template rendered with the
    parameters over its fixed variables; and the template version it came from (None: the
    task's own prompt), which the run's usage events record."""
    if task.prompt_template is None:
        return render_prompt(task, parameters), None
    reference = {
        **task.prompt_template,
        "variables": {**task.prompt_template["variables"], **parameters},
    }
    return await prompts_service.render_reference(session, task.organization_id, reference)


async def get_quick_task(
    session: AsyncSession, principal: OrganizationPrincipal, agent_id: uuid.UUID, task_id: uuid.UUID
) -> AgentQuickTask:
    return await _get(session, principal, agent_id, task_id)


def next_run_at(schedule: str | None, timezone: str, after: datetime) -> datetime | None:
    if schedule is None:
        return None
    local = after.astimezone(ZoneInfo(timezone))
    upcoming: datetime = croniter(schedule, local).get_next(datetime)
    return upcoming.astimezone(UTC)


async def list_quick_tasks(
    session: AsyncSession, principal: OrganizationPrincipal, agent_id: uuid.UUID
) -> list[AgentQuickTask]:
    await agents_service.get_usable_agent(session, principal, agent_id)
    return await repository.list_quick_tasks(session, principal.organization_id, agent_id)


async def create_quick_task(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID,
    data: QuickTaskCreate,
) -> AgentQuickTask:
    await agents_service.get_usable_agent(session, principal, agent_id)
    fields = data.model_dump()
    fields.update(await _prompt_template(session, principal, fields.pop("prompt_template")))
    task = AgentQuickTask(
        organization_id=principal.organization_id,
        agent_id=agent_id,
        created_by_user_id=principal.user_id,
        **fields,
    )
    _reschedule(task, principal)
    if not await repository.save_quick_task(session, task):
        raise QuickTaskNameTaken(f"This agent already has a quick task named {data.name!r}.")
    return task


async def update_quick_task(
    session: AsyncSession,
    principal: OrganizationPrincipal,
    agent_id: uuid.UUID,
    task_id: uuid.UUID,
    data: QuickTaskUpdate,
) -> AgentQuickTask:
    task = await _get(session, principal, agent_id, task_id)
    changes = data.model_dump(exclude_unset=True)
    if "prompt_template" in changes:
        changes.update(await _prompt_template(session, principal, changes["prompt_template"]))
    if not (
        changes.get("prompt", task.prompt) or changes.get("prompt_template", task.prompt_template)
    ):
        raise InvalidQuickTask("A quick task needs `prompt` or `prompt_template`.")

    def change() -> None:
        for field, value in changes.items():
            setattr(task, field, value)
        if {"schedule", "schedule_timezone", "enabled"} & changes.keys():
            _reschedule(task, principal)

    if not await repository.save_quick_task(session, task, change):
        raise QuickTaskNameTaken(
            f"This agent already has a quick task named {changes.get('name')!r}."
        )
    return task


async def _prompt_template(
    session: AsyncSession, principal: OrganizationPrincipal, reference: dict[str, Any] | None
) -> dict[str, Any]:
    """The task's columns for its prompt template (the organization's, with the label;
    its variables may come with each run, so it is not rendered here), or for none."""
    if reference is None:
        return {"prompt_template": None, "prompt_template_id": None}
    stored = await prompts_service.check_reference(
        session,
        principal.organization_id,
        TemplateReference.model_validate(reference),
        "private",  # the organization's own task, run in the organization
        render=False,
    )
    return {"prompt_template": stored, "prompt_template_id": uuid.UUID(stored["template_id"])}


async def delete_quick_task(
    session: AsyncSession, principal: OrganizationPrincipal, agent_id: uuid.UUID, task_id: uuid.UUID
) -> None:
    await repository.delete_quick_task(session, await _get(session, principal, agent_id, task_id))


async def _get(
    session: AsyncSession, principal: OrganizationPrincipal, agent_id: uuid.UUID, task_id: uuid.UUID
) -> AgentQuickTask:
    await agents_service.get_usable_agent(session, principal, agent_id)
    task = await repository.get_quick_task(session, principal.organization_id, agent_id, task_id)
    if task is None:
        raise QuickTaskNotFound()
    return task


def _reschedule(task: AgentQuickTask, principal: OrganizationPrincipal) -> None:
    """A (re)scheduled task runs for the admin who scheduled it, from the next cron tick."""
    if task.schedule is None or task.enabled is False:
        task.next_run_at = None
        if task.schedule is None:
            task.scheduled_by_user_id = None
        return
    task.scheduled_by_user_id = principal.user_id
    task.next_run_at = next_run_at(task.schedule, task.schedule_timezone, datetime.now(UTC))


async def claim_due(
    session: AsyncSession, organization_id: uuid.UUID, now: datetime
) -> list[AgentQuickTask]:
    """Take the organization's due scheduled tasks: each moves to its next tick and records
    this run, so a task is taken once per tick whatever happens to its run."""
    tasks = await repository.claim_due_quick_tasks(session, organization_id, now)
    for task in tasks:
        task.last_run_at = now
        task.next_run_at = next_run_at(task.schedule, task.schedule_timezone, now)
    await session.flush()
    return tasks


async def get_scheduled(
    session: AsyncSession, organization_id: uuid.UUID, task_id: uuid.UUID
) -> AgentQuickTask | None:
    """For the scheduler's job, which acts for the task's scheduler, not for a request."""
    return await repository.get_quick_task_by_id(session, organization_id, task_id)
