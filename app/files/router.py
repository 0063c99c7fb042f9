import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response, UploadFile, status
from fastapi.responses import FileResponse

from app.auth.principal import OrganizationPrincipalDep
from app.core.db import SessionDep, TransactionalRoute
from app.core.raises import raises
from app.files import media_types, service
from app.files.errors import FileNotFound, StorageUnavailable
from app.files.schemas import FileRead
from app.limits.dependencies import UploadRateLimitDep

router = APIRouter(tags=["files"], route_class=TransactionalRoute)


@router.post(
    "/conversations/{conversation_id}/files",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": FileRead, "description": "The conversation already had these bytes."}
    },
)
async def upload_conversation_file(
    conversation_id: uuid.UUID,
    file: UploadFile,
    request: Request,
    response: Response,
    session: SessionDep,
    principal: OrganizationPrincipalDep,
    rate_limit: UploadRateLimitDep,
    name: Annotated[str | None, Form(description="Overrides the upload's file name.")] = None,
) -> FileRead:
    """Upload a file into a conversation (its owner only). Its type is decided from its
    bytes; 413 beyond FILE_MAX_BYTES, 415 for a type that is not accepted."""
    settings = request.app.state.settings
    stored, created = await service.upload(
        session,
        principal,
        conversation_id,
        file.file,
        name or file.filename or "",
        request.app.state.storage,
        settings.file_max_bytes,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return FileRead.model_validate(stored)


@router.get("/conversations/{conversation_id}/files")
async def list_conversation_files(
    conversation_id: uuid.UUID, session: SessionDep, principal: OrganizationPrincipalDep
) -> list[FileRead]:
    files = await service.list_files(session, principal, conversation_id)
    return [FileRead.model_validate(file) for file in files]


@router.get("/files/{file_id}")
async def read_file(
    file_id: uuid.UUID, session: SessionDep, principal: OrganizationPrincipalDep
) -> FileRead:
    return FileRead.model_validate(await service.get_readable_file(session, principal, file_id))


@router.get(
    "/files/{file_id}/content",
    response_class=FileResponse,
    responses={
        200: {
            # Served with the type the bytes were found to have on upload.
            "content": {media_type: {"schema": {}} for media_type in sorted(media_types.ALLOWED)},
            "description": "The bytes",
        },
        307: {
            "description": "With S3_PRESIGNED_DOWNLOAD_SECONDS: a redirect to a presigned URL "
            "of the bytes, served by the file store with the same type and name."
        },
    },
)
@raises(FileNotFound, StorageUnavailable)  # the storage's: not followed by the reading
async def read_file_content(
    file_id: uuid.UUID, request: Request, session: SessionDep, principal: OrganizationPrincipalDep
) -> Response:
    """The bytes, with the stored media type and the client's name as an attachment,
    streamed from the file store."""
    file = await service.get_readable_file(session, principal, file_id)
    response: Response = await request.app.state.storage.download(
        file.storage_path, file.media_type, file.original_name
    )
    return response


@router.delete("/files/{file_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_file(
    file_id: uuid.UUID, request: Request, session: SessionDep, principal: OrganizationPrincipalDep
) -> None:
    """Delete a file (the conversation's owner only): its row now, its bytes once that
    commits."""
    await service.delete(session, principal, file_id, request.app.state.storage)
