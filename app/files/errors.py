from app.core.errors import (
    AppError,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnprocessableContent,
    UnsupportedMediaType,
)


class FileNotFound(NotFound):
    problem = "file-not-found"
    title = "File not found"


class FileTooLarge(PayloadTooLarge):
    problem = "file-too-large"
    title = "File too large"


class UnsupportedFileType(UnsupportedMediaType):
    problem = "unsupported-file-type"
    title = "Unsupported file type"


class InvalidAttachment(UnprocessableContent):
    problem = "invalid-attachment"
    title = "Invalid attachment"


class InsufficientStorage(AppError):
    """The disk (or the quota) holding WORKSPACES_DIR, or the object store, is full: the
    client may try again later, and nothing of the attempt is kept."""

    status_code = 507
    problem = "insufficient-storage"
    title = "Insufficient Storage"


class StorageUnavailable(ServiceUnavailable):
    """The object store refused or did not answer (after its retries): nothing of the attempt
    is kept, and the client may try again."""

    problem = "storage-unavailable"
    title = "File storage unavailable"
