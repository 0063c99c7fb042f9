from app.core.errors import (
    NotFound,
    PayloadTooLarge,
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
