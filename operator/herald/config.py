"""The operator's own configuration, from the environment (the Helm chart sets it)."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field

from .engine import EngineSettings
from .jobs import JobDefaults


class OperatorConfig(BaseModel):
    namespaces: list[str] = Field(default_factory=list, description="empty: every namespace")
    adapter_image: str = "herald-adapter:latest"
    adapter_service_account: str = ""
    job_ttl_seconds: int = 86400
    job_deadline_seconds: int = 600
    adapter_timeout_seconds: int = 10
    metrics_port: int = 8080
    health_port: int = 8081
    alerts_config: str | None = None
    queue_alert_threshold: int = 100
    resync_seconds: float = 300.0
    status_coalesce_seconds: float = 10.0
    workers: int = 16
    liveness_seconds: float = 60.0
    publication_ttl_seconds: int | None = Field(default=None, ge=0)
    test_wedge_on: str = ""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        e = os.environ if env is None else env
        raw = {
            "namespaces": [n for n in e.get("HERALD_NAMESPACES", "").split(",") if n.strip()],
            "adapter_image": e.get("HERALD_ADAPTER_IMAGE"),
            "adapter_service_account": e.get("HERALD_ADAPTER_SERVICE_ACCOUNT"),
            "job_ttl_seconds": e.get("HERALD_JOB_TTL_SECONDS"),
            "job_deadline_seconds": e.get("HERALD_JOB_DEADLINE_SECONDS"),
            "adapter_timeout_seconds": e.get("HERALD_ADAPTER_TIMEOUT_SECONDS"),
            "metrics_port": e.get("HERALD_METRICS_PORT"),
            "health_port": e.get("HERALD_HEALTH_PORT"),
            "alerts_config": e.get("HERALD_ALERTS_CONFIG"),
            "queue_alert_threshold": e.get("HERALD_QUEUE_ALERT_THRESHOLD"),
            "resync_seconds": e.get("HERALD_RESYNC_SECONDS"),
            "status_coalesce_seconds": e.get("HERALD_STATUS_COALESCE_SECONDS"),
            "workers": e.get("HERALD_WORKERS"),
            "liveness_seconds": e.get("HERALD_LIVENESS_SECONDS"),
            "publication_ttl_seconds": e.get("HERALD_PUBLICATION_TTL_SECONDS"),
            # Test-only fault: the reconcile loop hangs when it meets a Publication of this name.
            "test_wedge_on": e.get("HERALD_TEST_WEDGE_ON"),
        }
        return cls(**{k: v for k, v in raw.items() if v not in (None, "")})

    def engine_settings(self) -> EngineSettings:
        return EngineSettings(
            resync_seconds=self.resync_seconds,
            status_coalesce_seconds=self.status_coalesce_seconds,
            workers=self.workers,
            liveness_seconds=self.liveness_seconds,
            publication_ttl_seconds=self.publication_ttl_seconds,
            wedge_on=self.test_wedge_on,
        )

    def job_defaults(self) -> JobDefaults:
        return JobDefaults(
            image=self.adapter_image,
            service_account=self.adapter_service_account,
            ttl_seconds_after_finished=self.job_ttl_seconds,
            active_deadline_seconds=self.job_deadline_seconds,
            timeout_seconds=self.adapter_timeout_seconds,
        )
