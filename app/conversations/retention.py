"""Retention: conversations with no activity for RETENTION_DAYS are deleted with everything
they own: messages, files (rows, then bytes), their chunks and their agent states (the rows
go by cascade, in the conversation's transaction; the bytes once it commits).

Run daily by the job worker and by hand with `ajc cleanup [--dry-run]`. It visits one
organization at a time (the tenant set for it) and deletes in batches, one transaction each,
so a crash half-way leaves every batch either done or untouched. The bytes of a committed
batch are removed after its commit; if the process dies between the two, the next run finds
the folders (key prefixes, on S3) whose conversation is gone and removes them, as it removes
uploads that never reached their row (staged `.incoming/` objects older than a day), on
either storage backend. Rerunning finishes the job.
"""

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.conversations import repository
from app.core.db import set_tenant, unit_of_work
from app.files import storage as file_storage
from app.files.storage import Storage
from app.organizations import service as organizations_service

logger = logging.getLogger(__name__)

BATCH = 200
INCOMING_MAX_AGE_SECONDS = 24 * 3600


@dataclass
class Report:
    conversations: int = 0
    messages: int = 0
    files: int = 0
    embeddings: int = 0
    agent_states: int = 0
    orphan_folders: int = 0
    stale_uploads: int = 0
    organizations: list[str] = field(default_factory=list)

    def add(self, counts: dict[str, int]) -> None:
        for name, value in counts.items():
            setattr(self, name, getattr(self, name) + value)


async def purge_inactive(
    sessionmaker: async_sessionmaker[AsyncSession],
    storage: Storage,
    now: datetime,
    days: int,
    dry_run: bool = False,
    batch: int = BATCH,
) -> Report:
    """Delete (or, with `dry_run`, count) what has been inactive since `now - days`, `batch`
    conversations per transaction."""
    before = now - timedelta(days=days)
    report = Report()
    async with sessionmaker() as session:
        organization_ids = await organizations_service.list_ids(session)
    for organization_id in organization_ids:
        found = await _purge_organization(
            sessionmaker, storage, organization_id, before, dry_run, batch, report
        )
        if found:
            report.organizations.append(str(organization_id))
        if not dry_run:
            await _remove_orphan_folders(sessionmaker, storage, organization_id, report)
    if not dry_run:
        # The wall clock bounds a `now` set ahead (tests): an upload in flight is never
        # "stale".
        cutoff = min(now.timestamp(), time.time()) - INCOMING_MAX_AGE_SECONDS
        report.stale_uploads = await storage.remove_staged_before(cutoff)
    logger.info("retention", extra={"dry_run": dry_run, "days": days, **report.__dict__})
    return report


async def _purge_organization(
    sessionmaker: async_sessionmaker[AsyncSession],
    storage: Storage,
    organization_id: uuid.UUID,
    before: datetime,
    dry_run: bool,
    batch: int,
    report: Report,
) -> bool:
    found = False
    # Keyset pages: a dry run, which deletes nothing, reads each conversation once.
    cursor: repository.InactiveCursor | None = None
    while True:
        async with sessionmaker() as session, unit_of_work(session):
            await set_tenant(session, organization_id)
            page = await repository.inactive_page(session, organization_id, before, batch, cursor)
            if not page:
                return found
            found = True
            ids = [conversation_id for conversation_id, _ in page]
            cursor = (page[-1][1], page[-1][0])
            report.conversations += len(ids)
            report.add(await repository.count_owned(session, organization_id, ids))
            if dry_run:
                continue
            deleted = await repository.delete_inactive(session, organization_id, ids, before)
            for user_id, conversation_id in deleted:
                file_storage.remove_conversation_files_after_commit(
                    session, storage, organization_id, user_id, conversation_id
                )


async def _remove_orphan_folders(
    sessionmaker: async_sessionmaker[AsyncSession],
    storage: Storage,
    organization_id: uuid.UUID,
    report: Report,
) -> None:
    """Conversation folders whose conversation is gone (a crash between a commit and the
    removal of its bytes, rows cascaded from a deleted agent or user).

    The folders are listed before the database is asked: a folder exists only once its
    conversation has committed (uploads go to existing conversations), so one listed here
    and missing from the database is really gone, whatever commits meanwhile."""
    folders: list[tuple[str, uuid.UUID]] = []  # (user folder, conversation id)
    for user_folder in await storage.subfolders(str(organization_id)):
        if not _is_uuid(user_folder):  # not knowledge/, which belongs to agents
            continue
        user_path = f"{organization_id}/{user_folder}"
        folders += [
            (user_path, uuid.UUID(name))
            for name in await storage.subfolders(user_path)
            if _is_uuid(name)
        ]
    if not folders:
        return
    async with sessionmaker() as session:
        await set_tenant(session, organization_id)
        existing = await repository.existing_ids(
            session, organization_id, [conversation_id for _, conversation_id in folders]
        )
    for user_path, conversation_id in folders:
        if conversation_id not in existing:
            await storage.delete_folder(f"{user_path}/{conversation_id}")
            report.orphan_folders += 1


def _is_uuid(name: str) -> bool:
    try:
        uuid.UUID(name)
    except ValueError:
        return False
    return True
