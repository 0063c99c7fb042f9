"""The storage backends (app/files/storage.py says what each keeps and guarantees)."""

from typing import TYPE_CHECKING

from app.files.storage import Storage

if TYPE_CHECKING:
    from app.core.settings import Settings


def create_storage(settings: "Settings") -> Storage:
    """The backend STORAGE_BACKEND names, made once per process (API, worker, command)."""
    if settings.storage_backend == "s3":
        from app.files.backends.s3 import S3Storage

        return S3Storage.from_settings(settings)
    from app.files.backends.local import LocalStorage

    return LocalStorage(settings.workspaces_dir)
