from app.core.errors import NotFound, PayloadTooLarge, UnsupportedMediaType


class FileNotFound(NotFound):
    problem = "file-not-found"
    title = "File not found"


class FileTooLarge(PayloadTooLarge):
    problem = "file-too-large"
    title = "File too large"


class UnsupportedFileType(UnsupportedMediaType):
    problem = "unsupported-file-type"
    title = "Unsupported file type"
