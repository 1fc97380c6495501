"""The operator's configuration: every setting in one place, read once from the environment
(``HERALD_<NAME>``; the Helm chart sets them) and from the command line, then passed on.

| setting (env) | default | meaning |
| --- | --- | --- |
| ``HERALD_NAMESPACES`` | all | comma-separated namespaces to watch (``-n`` on the command line) |
| ``HERALD_ADAPTER_IMAGE`` | herald-adapter:latest | the adapter image for PlatformAdapters without ``spec.image`` |
| ``HERALD_ADAPTER_SERVICE_ACCOUNT`` | namespace default | ServiceAccount of adapter pods |
| ``HERALD_ADAPTER_IMAGE_PULL_SECRETS`` | none | comma-separated Secrets for pulling adapter images |
| ``HERALD_ADAPTER_PRIORITY_CLASS_NAME`` | none | PriorityClass of adapter pods |
| ``HERALD_ADAPTER_AFFINITY`` | none | Affinity of adapter pods (JSON) |
| ``HERALD_ADAPTER_RESOURCES`` | 50m/64Mi requests, 256Mi limit | resources of adapter containers (JSON) |
| ``HERALD_JOB_TTL_SECONDS`` | 86400 | ttlSecondsAfterFinished of attempt Jobs |
| ``HERALD_JOB_DEADLINE_SECONDS`` | 600 | activeDeadlineSeconds of attempt Jobs |
| ``HERALD_ADAPTER_TIMEOUT_SECONDS`` | 10 | the adapter's timeout for one platform call |
| ``HERALD_METRICS_PORT`` | 8080 | Prometheus metrics |
| ``HERALD_HEALTH_PORT`` | 8081 | /healthz (``--health-port``) |
| ``HERALD_ALERTS_CONFIG`` | none | path of Herald's own alerts configuration (docs/alerting.md) |
| ``HERALD_ALERTS_STATE_CONFIGMAP`` | none | ConfigMap keeping the alerts' state across restarts: ``name`` |
|  |  | (in ``POD_NAMESPACE``, else the ServiceAccount's namespace) or ``namespace/name`` |
| ``POD_NAMESPACE`` | none | the operator's own namespace (the chart sets it from the downward API) |
| ``HERALD_READ_SECRET_METADATA`` | false | read credentials Secrets' metadata: rotation noticed at once |
|  |  | (needs ``get`` on them: the chart's ``rbac.secretNames``) |
| ``HERALD_CREDENTIALS_PROBE_SECONDS`` | 30 | first delay of a credentials probe (doubles per failed probe) |
| ``HERALD_CREDENTIALS_PROBE_MAX_SECONDS`` | 900 | longest delay between credentials probes |
| ``HERALD_QUEUE_ALERT_THRESHOLD`` | 100 | queued targets that raise HeraldQueueOverloaded |
| ``HERALD_PEERING`` | standalone | kopf peering name (``--peering``) |
| ``HERALD_PEERING_PRIORITY`` | random | kopf peering priority (``--priority``) |
| ``HERALD_RESYNC_SECONDS`` | 300 | full relist under the watches |
| ``HERALD_STATUS_COALESCE_SECONDS`` | 10 | how long a status that only records a started attempt may wait |
| ``HERALD_WORKERS`` | 32 | units of work whose writes run at once |
| ``HERALD_REQUESTS`` | 64 | API writes in flight at once, and as many Events (pool: twice as many) |
| ``HERALD_UNIT_WRITES`` | 64 | writes and changed Publications per unit and decision (half: starts, queue head) |
| ``HERALD_INFLIGHT_WRITES`` | 192 | no new decision while this many decided writes are not done |
| ``HERALD_GC_THRESHOLD`` | 0 | allocations between young garbage collections (0: Python's own, 700) |
| ``HERALD_LIVENESS_SECONDS`` | 60 | /healthz fails when no tick ended this long while work is due |
| ``HERALD_PUBLICATION_TTL_SECONDS`` | off | default spec.ttlSecondsAfterFinished of Publications |
| ``HERALD_SHARD`` | none | only namespaces labelled ``herald.dev/shard=<shard>`` (``default``: also unlabelled) |
| ``HERALD_LEADER_ELECTION`` | false | only the replica holding the Lease acts (the chart turns it on) |
| ``HERALD_LEASE_NAME`` | herald-operator | the coordination.k8s.io Lease's name |
| ``HERALD_LEASE_NAMESPACE`` | POD_NAMESPACE | the Lease's namespace |
| ``HERALD_VERBOSE`` | false | debug logging (``-v``), without HTTP wire traces |
| ``HERALD_LOG_FORMAT`` | text | ``text`` or ``json``: one JSON object per line (``--log-format``) |
| ``HERALD_TEST_WEDGE_ON`` | off | test-only fault: the loop hangs on a Publication of this name |
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .engine import EngineSettings
from .jobs import DEFAULT_RESOURCES, JobDefaults


class OperatorConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_", extra="ignore", frozen=True)

    namespaces: Annotated[list[str], NoDecode] = Field(default_factory=list, description="empty: every namespace")
    adapter_image: str = "herald-adapter:latest"
    adapter_service_account: str = ""
    adapter_image_pull_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    adapter_priority_class_name: str = ""
    adapter_affinity: dict[str, Any] | None = None
    adapter_resources: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    job_ttl_seconds: int = Field(default=86400, ge=0)
    job_deadline_seconds: int = Field(default=600, ge=1)
    adapter_timeout_seconds: int = Field(default=10, ge=1)
    metrics_port: int = 8080
    health_port: int = 8081
    alerts_config: str | None = None
    alerts_state_configmap: str | None = None  # herald.alerts.state_store (the chart sets it)
    pod_namespace: str = Field(default="", validation_alias=AliasChoices("POD_NAMESPACE", "pod_namespace"))
    queue_alert_threshold: int = 100
    read_secret_metadata: bool = False
    credentials_probe_seconds: float = Field(default=30.0, gt=0, le=86400)
    credentials_probe_max_seconds: float = Field(default=900.0, gt=0, le=86400)
    peering: str | None = None
    peering_priority: int | None = None
    resync_seconds: float = Field(default=300.0, gt=0)
    status_coalesce_seconds: float = Field(default=10.0, ge=0)
    workers: int = Field(default=32, ge=1)
    requests: int = Field(default=64, ge=1, le=512)
    unit_writes: int = Field(default=64, ge=1)
    inflight_writes: int = Field(default=192, ge=1)
    gc_threshold: int = Field(default=0, ge=0)
    liveness_seconds: float = Field(default=60.0, gt=0)
    publication_ttl_seconds: int | None = Field(default=None, ge=0)
    shard: str | None = None
    leader_election: bool = False
    lease_name: str = "herald-operator"
    lease_namespace: str = Field(default="", validation_alias=AliasChoices("HERALD_LEASE_NAMESPACE", "POD_NAMESPACE"))
    verbose: bool = False
    log_format: Literal["text", "json"] = "text"
    test_wedge_on: str = ""

    @field_validator("namespaces", "adapter_image_pull_secrets", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [n.strip() for n in value.split(",") if n.strip()]
        return value

    @field_validator(
        "alerts_config",
        "alerts_state_configmap",
        "shard",
        "peering",
        "peering_priority",
        "publication_ttl_seconds",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    def engine_settings(self) -> EngineSettings:
        return EngineSettings(
            resync_seconds=self.resync_seconds,
            status_coalesce_seconds=self.status_coalesce_seconds,
            workers=self.workers,
            requests=self.requests,
            unit_writes=self.unit_writes,
            inflight_writes=self.inflight_writes,
            liveness_seconds=self.liveness_seconds,
            read_secret_metadata=self.read_secret_metadata,
            credentials_probe=(
                self.credentials_probe_seconds,
                max(self.credentials_probe_seconds, self.credentials_probe_max_seconds),
            ),
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
            resources=self.adapter_resources,
            image_pull_secrets=tuple(self.adapter_image_pull_secrets),
            priority_class_name=self.adapter_priority_class_name,
            affinity=self.adapter_affinity,
        )
