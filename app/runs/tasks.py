"""Scheduled quick tasks, run by the job worker.

Every minute `schedule_quick_tasks` visits the organizations one at a time (the tenant set
for each), takes their due tasks (moving each to its next tick) and defers one
`run_quick_task` job per task. That job runs the task's prompt for the admin who scheduled
it, in a new conversation named after the task, exactly like an interactive run whose client
is not listening. A job takes ids, and the queueing lock on (task, tick) makes a second
deferral of the same tick a no-op.
"""

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import procrastinate
from ag_ui.core import RunAgentInput, UserMessage

from app.agents import quick_tasks
from app.auth.identity import OrganizationPrincipal
from app.budgets.errors import BudgetExceeded, ModelUnpriced
from app.core.db import set_tenant, unit_of_work
from app.organizations import service as organizations_service
from app.organizations.models import MembershipRole
from app.runs import executor
from app.runs import service as run_service
from app.runs.saving import AnswerSaver
from app.runs.tools import ToolRunner

logger = logging.getLogger(__name__)

NAMESPACE = "runs"
RUN_QUICK_TASK = f"{NAMESPACE}:run_quick_task"


def blueprint() -> procrastinate.Blueprint:
    """A fresh blueprint for each job queue: procrastinate namespaces a blueprint's tasks in
    place, so one blueprint object can join only one app."""
    jobs = procrastinate.Blueprint()
    scheduler = jobs.task(name="schedule_quick_tasks", pass_context=True)(schedule_quick_tasks)
    jobs.periodic(cron="* * * * *")(scheduler)
    jobs.task(name="run_quick_task", pass_context=True, retry=2)(run_quick_task)
    return jobs


async def schedule_quick_tasks(context: procrastinate.JobContext, timestamp: int) -> int:
    sessionmaker = context.additional_context["sessionmaker"]
    now = datetime.now(UTC)
    async with sessionmaker() as session:
        organization_ids = await organizations_service.list_ids(session)
    deferred = 0
    for organization_id in organization_ids:
        async with sessionmaker() as session, unit_of_work(session):
            await set_tenant(session, organization_id)
            due = await quick_tasks.claim_due(session, organization_id, now)
            for task in due:
                await context.app.configure_task(
                    RUN_QUICK_TASK,
                    queueing_lock=f"quick-task-{task.id}-{int(now.timestamp() // 60)}",
                ).defer_async(organization_id=str(organization_id), task_id=str(task.id))
                deferred += 1
    return deferred


async def run_quick_task(
    context: procrastinate.JobContext, organization_id: str, task_id: str
) -> str | None:
    """Run one scheduled quick task to completion; the id of its conversation."""
    try:
        prepared = await _prepare(context, uuid.UUID(organization_id), uuid.UUID(task_id))
    except (BudgetExceeded, ModelUnpriced) as exc:
        # Nothing of the run kept (its rows rolled back), and not worth a retry: the
        # budgets decide again at the task's next tick.
        logger.warning(
            "scheduled quick task refused by a budget",
            extra={"task_id": task_id, "problem": exc.problem, "detail": exc.detail},
        )
        return None
    if prepared is None:
        return None  # deleted or unscheduled since: nothing to do
    settings = context.additional_context["settings"]
    queue: asyncio.Queue[Any] = asyncio.Queue()
    tools = ToolRunner(
        context.additional_context["sessionmaker"],
        context.additional_context["embedders"],
        context.additional_context["storage"],
    )
    async with AnswerSaver(context.additional_context["database"]).running() as saver:
        await executor.execute(prepared, tools, saver, queue, settings.run_max_seconds)
    return prepared.thread_id


async def _prepare(
    context: procrastinate.JobContext, organization_id: uuid.UUID, task_id: uuid.UUID
) -> run_service.PreparedRun | None:
    """The task's run prepared (and committed) for the admin who scheduled it."""
    async with context.additional_context["sessionmaker"]() as session, unit_of_work(session):
        await set_tenant(session, organization_id)
        task = await quick_tasks.get_scheduled(session, organization_id, task_id)
        if task is None or task.scheduled_by_user_id is None:
            return None
        principal = OrganizationPrincipal(
            user_id=task.scheduled_by_user_id,
            clerk_user_id="",
            organization_id=task.organization_id,
            clerk_organization_id="",
            role=MembershipRole.member,
        )
        await set_tenant(session, principal.organization_id, principal.user_id)
        prompt, version_id = await quick_tasks.prompt_for(session, task, {})
        run_input = RunAgentInput(
            thread_id=str(uuid.uuid4()),
            run_id=str(uuid.uuid4()),
            state={},
            messages=[UserMessage(id=str(uuid.uuid4()), content=prompt)],
            tools=[],
            context=[],
            forwarded_props={},
        )
        return await run_service.prepare_run(
            session,
            principal,
            task.agent_id,
            run_input,
            context.additional_context["settings"],
            context.additional_context["model_clients"],
            context.additional_context["embedders"],
            title=task.name,
            task_template_version_id=version_id,
        )
