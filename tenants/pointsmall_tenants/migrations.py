"""One Alembic script directory applied to many schemas: provision one, fan out to all.

Migrations are written against unqualified tables (schema None). Each schema runs them in a
transaction of its own with `schema_translate_map={None: schema}` and keeps its own
`alembic_version` table, so a run can stop anywhere and resume where it stopped.
"""

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from pointsmall_tenants.naming import validate_schema_name


class FanOutFailed(RuntimeError):
    """A schema's migration failed; the run stopped there. Schemas before it are upgraded."""

    def __init__(self, schema: str, cause: BaseException, report: "FanOutReport") -> None:
        super().__init__(f"migration of schema {schema} failed: {cause!r}")
        self.schema = schema
        self.cause = cause
        self.report = report


@dataclass
class FanOutReport:
    upgraded: list[str] = field(default_factory=list)
    already_current: int = 0
    seconds: float = 0.0


class SchemaMigrations:
    """The tenant migrations of one script directory, loaded once and applied per schema."""

    def __init__(self, script_location: str) -> None:
        self.config = Config()
        self.config.set_main_option("script_location", script_location)
        self.script = ScriptDirectory.from_config(self.config)

    @property
    def head(self) -> str | None:
        return self.script.get_current_head()

    def current(self, connection: Connection, schema: str) -> str | None:
        """The version `schema` is at (None for an empty or missing schema)."""
        context = MigrationContext.configure(connection, opts={"version_table_schema": schema})
        return context.get_current_revision()

    def upgrade(self, connection: Connection, schema: str, target: str = "heads") -> bool:
        """Upgrade tenant `schema` inside the caller's transaction; True if anything ran."""
        return self._run(connection, validate_schema_name(schema), target, translate=True)

    def upgrade_fixed_schema(self, connection: Connection, schema: str) -> bool:
        """Upgrade a schema whose tables name it explicitly (the shared schema).

        Takes a transaction-scoped advisory lock, so concurrent runs (two replicas
        starting) queue instead of racing.
        """
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"migrate:{schema}"}
        )
        connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        return self._run(connection, schema, "heads", translate=False)

    def _run(self, connection: Connection, schema: str, target: str, *, translate: bool) -> bool:
        if self.current(connection, schema) == self.head:
            return False
        if translate:
            connection = connection.execution_options(schema_translate_map={None: schema})
            # Raw SQL in migrations (functions, triggers) resolves names through the
            # search_path; SET LOCAL ends with this transaction, so nothing leaks into the pool.
            connection.exec_driver_sql(f'SET LOCAL search_path TO "{schema}", public')

        def steps(rev: Any, _context: Any) -> Any:
            return self.script._upgrade_revs(target, rev)

        with EnvironmentContext(self.config, self.script, fn=steps, destination_rev=target) as env:
            env.configure(connection=connection, version_table_schema=schema)
            env.run_migrations()
        return True

    def provision(self, connection: Connection, schema: str) -> None:
        """Create `schema` and bring it to head, inside the caller's transaction."""
        connection.exec_driver_sql(f'CREATE SCHEMA "{validate_schema_name(schema)}"')
        self.upgrade(connection, schema)

    async def fan_out(
        self,
        engine: AsyncEngine,
        schemas: Iterable[str],
        *,
        concurrency: int = 4,
        progress: Callable[[str], None] | None = None,
    ) -> FanOutReport:
        """Upgrade every schema, `concurrency` at a time, one transaction per schema.

        Stops at the first failure (raising FanOutFailed naming the schema); the schemas
        already done keep their new version, so running it again resumes.
        """
        pending = sorted(validate_schema_name(s) for s in schemas)
        pending.reverse()  # pop() from the end takes them in name order
        report = FanOutReport()
        failure: list[tuple[str, BaseException]] = []
        started = time.perf_counter()

        async def worker() -> None:
            async with engine.connect() as conn:
                while pending and not failure:
                    schema = pending.pop()
                    try:
                        async with conn.begin():
                            ran = await conn.run_sync(self.upgrade, schema)
                    except Exception as exc:
                        failure.append((schema, exc))
                        return
                    if ran:
                        report.upgraded.append(schema)
                        if progress:
                            progress(schema)
                    else:
                        report.already_current += 1

        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
        report.seconds = time.perf_counter() - started
        if failure:
            schema, exc = failure[0]
            raise FanOutFailed(schema, exc, report)
        return report
