"""Files on disk under WORKSPACES_DIR: `{org_id}/{user_id}/{conversation_id}/files/...`.

The layout makes each deletion one folder: a conversation's, an organization's
whole tree, or a user's folder in every organization.
"""

import logging
import shutil
import uuid
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import after_commit

logger = logging.getLogger(__name__)


def remove_organization_files_after_commit(
    session: AsyncSession, workspaces_dir: Path, organization_id: uuid.UUID
) -> None:
    after_commit(session, lambda: _remove_tree(workspaces_dir / str(organization_id)))


def remove_conversation_files_after_commit(
    session: AsyncSession,
    workspaces_dir: Path,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
) -> None:
    folder = workspaces_dir / str(organization_id) / str(user_id) / str(conversation_id)
    after_commit(session, lambda: _remove_tree(folder))


def remove_user_files_after_commit(
    session: AsyncSession, workspaces_dir: Path, user_id: uuid.UUID
) -> None:
    def remove() -> None:
        for organization_folder in _subfolders(workspaces_dir):
            _remove_tree(organization_folder / str(user_id))

    after_commit(session, remove)


def _subfolders(folder: Path) -> list[Path]:
    return [child for child in folder.iterdir() if child.is_dir()] if folder.is_dir() else []


def _remove_tree(folder: Path) -> None:
    if folder.is_dir():
        shutil.rmtree(folder)
        logger.info("removed files", extra={"folder": str(folder)})
