"""The operator's own configuration, from the environment (the Helm chart sets it)."""
from __future__ import annotations

import os

from pydantic import BaseModel, Field

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

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "OperatorConfig":
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
        }
        return cls(**{k: v for k, v in raw.items() if v not in (None, "")})

    def job_defaults(self) -> JobDefaults:
        return JobDefaults(
            image=self.adapter_image,
            service_account=self.adapter_service_account,
            ttl_seconds_after_finished=self.job_ttl_seconds,
            active_deadline_seconds=self.job_deadline_seconds,
            timeout_seconds=self.adapter_timeout_seconds,
        )
