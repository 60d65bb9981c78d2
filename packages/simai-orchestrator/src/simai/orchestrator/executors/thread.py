"""``thread-pool``: components run as threads of the orchestrator's process."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel, ConfigDict, Field


class ThreadPoolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "thread-pool"
    max_workers: int | None = Field(default=None, ge=1, description="default: min(32, cpus + 4)")
    thread_name_prefix: str = "simai-worker"

    def get_executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.max_workers, thread_name_prefix=self.thread_name_prefix)
