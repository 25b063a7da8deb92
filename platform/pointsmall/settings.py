"""Every setting the service reads, from the environment, in one typed place."""

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    # Unset: `pointsmall dev` starts an embedded PostgreSQL / Redis under `data_dir`.
    database_url: str | None = None
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    data_dir: Path = field(default_factory=lambda: Path.cwd() / ".pointsmall")
    log_level: str = "INFO"
    db_pool_size: int = 10
    db_max_overflow: int = 10
    # Retire pooled connections by age and use: a backend's relation cache grows with
    # every tenant schema it touches.
    db_recycle_seconds: int = 600
    db_recycle_uses: int = 2000
    # Tenant-scoped sessions use this many sub-pools, each serving a fixed share of the
    # tenants, so a backend's catalog caches stay warm and small (see TenantAffineEngines).
    db_pool_shards: int = 4
    migrate_concurrency: int = 4
    max_body_bytes: int = 1_048_576
    idempotency_ttl_hours: int = 24
    # How long a verified API key is trusted without asking the database again. A revoked
    # key stops at once in the process that revoked it, within this many seconds elsewhere.
    auth_cache_seconds: int = 10
    # Published outbox events, and webhook messages and attempts, are kept this long.
    outbox_retention_days: int = 7
    webhook_log_retention_days: int = 30
    # Tenant schemas kept made and migrated ahead of signups (the worker tops the pool up
    # every minute); 0 makes every signup run its schema's DDL itself.
    spare_schemas: int = 5
    # How long an order with a cash part waits for its payment before it is cancelled.
    payment_timeout_seconds: int = 900
    # The arq queue; tests give each run a queue of its own on a shared Redis.
    queue_name: str = "pointsmall:queue"
    # production | development | test: outside production webhook URLs may be http.
    environment: str = "production"
    # Keys that encrypt webhook secrets at rest, `id:base64(32 bytes)[,id:key...]`, the first
    # current. Unset: a key file under `data_dir` is made on first use (fine for one host).
    webhook_secret_keys: str | None = None
    # Admit loopback and private targets (on-premises, tests). Link-local never.
    webhook_allow_private: bool = False
    # A fresh delivery's first attempt is made by the worker that relayed it; until this
    # lease runs out no one else tries. Rescue enqueues what is this overdue (lost jobs).
    webhook_first_attempt_lease_seconds: int = 120
    webhook_rescue_after_seconds: int = 30
    # Set: `/metrics` answers only requests with `Authorization: Bearer <token>`.
    metrics_token: str | None = None
    # A worker or relay whose heartbeat is older than this is stale (`/healthz/workers` 503).
    heartbeat_stale_seconds: int = 30

    @property
    def webhook_queue(self) -> str:
        return f"{self.queue_name}:webhooks"

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            host=env.get("HOST", "127.0.0.1"),
            port=_int("PORT", 8000),
            workers=_int("WEB_CONCURRENCY", 1),
            data_dir=Path(env.get("POINTSMALL_DATA_DIR", Path.cwd() / ".pointsmall")),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            db_pool_size=_int("DB_POOL_SIZE", 10),
            db_max_overflow=_int("DB_MAX_OVERFLOW", 10),
            db_recycle_seconds=_int("DB_RECYCLE_SECONDS", 600),
            db_recycle_uses=_int("DB_RECYCLE_USES", 2000),
            db_pool_shards=_int("DB_POOL_SHARDS", 4),
            migrate_concurrency=_int("MIGRATE_CONCURRENCY", 4),
            max_body_bytes=_int("MAX_BODY_BYTES", 1_048_576),
            idempotency_ttl_hours=_int("IDEMPOTENCY_TTL_HOURS", 24),
            auth_cache_seconds=_int("AUTH_CACHE_SECONDS", 10),
            spare_schemas=_int("SPARE_SCHEMAS", 5),
            outbox_retention_days=_int("OUTBOX_RETENTION_DAYS", 7),
            webhook_log_retention_days=_int("WEBHOOK_LOG_RETENTION_DAYS", 30),
            payment_timeout_seconds=_int("PAYMENT_TIMEOUT_SECONDS", 900),
            queue_name=env.get("POINTSMALL_QUEUE", "pointsmall:queue"),
            environment=env.get("POINTSMALL_ENV", "production"),
            webhook_secret_keys=env.get("WEBHOOK_SECRET_KEYS") or None,
            webhook_first_attempt_lease_seconds=_int("WEBHOOK_FIRST_ATTEMPT_LEASE_SECONDS", 120),
            webhook_rescue_after_seconds=_int("WEBHOOK_RESCUE_AFTER_SECONDS", 30),
            webhook_allow_private=env.get("WEBHOOK_ALLOW_PRIVATE_TARGETS", "").lower()
            in ("1", "true", "yes"),
            metrics_token=env.get("METRICS_TOKEN") or None,
            heartbeat_stale_seconds=_int("HEARTBEAT_STALE_SECONDS", 30),
        )

    def with_urls(self, database_url: str, redis_url: str) -> "Settings":
        return replace(self, database_url=database_url, redis_url=redis_url)

    @property
    def async_database_url(self) -> str:
        """The URL with SQLAlchemy's asyncpg driver named (users give plain postgresql://)."""
        if not self.database_url:
            raise RuntimeError("DATABASE_URL is not set and no embedded database was started")
        scheme, sep, rest = self.database_url.partition("://")
        if scheme in ("postgres", "postgresql"):
            return f"postgresql+asyncpg://{rest}"
        return self.database_url if sep else f"postgresql+asyncpg://{self.database_url}"
