from typing import Literal

from pydantic import BaseModel


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool
    database: Literal["reachable", "unreachable"]
    migration: str | None = None
    expected_migration: str | None = None
    detail: str | None = None
