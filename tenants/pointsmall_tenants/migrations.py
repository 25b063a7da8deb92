"""One Alembic script directory applied to many schemas: provision one, fan out to all.

Tenant migrations are written against unqualified tables (schema None). Alembic's runtime
keeps its `op`/`context` proxies in module globals, so two migrations cannot run at once
in one process. Instead, the SQL that takes a schema from version X to head is rendered
once (Alembic's offline mode) and then executed per schema, under `SET LOCAL search_path`,
in one round trip and one transaction per schema. That is what makes fan-out over
thousands of schemas both parallel and fast, and it means tenant migrations must be
renderable offline: DDL and plain SQL, no Python that reads the database.

Each schema keeps its own `alembic_version` table, so a run can stop anywhere and resume.
"""

import asyncio
import io
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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
    """The migrations of one script directory, loaded once and applied per schema."""

    def __init__(self, script_location: str) -> None:
        self.config = Config()
        self.config.set_main_option("script_location", script_location)
        self.script = ScriptDirectory.from_config(self.config)
        self._rendered: dict[str | None, str] = {}

    @property
    def head(self) -> str | None:
        return self.script.get_current_head()

    def current(self, connection: Connection, schema: str) -> str | None:
        """The version `schema` is at (None for an empty or missing schema)."""
        context = MigrationContext.configure(connection, opts={"version_table_schema": schema})
        return context.get_current_revision()

    def upgrade_sql(self, from_revision: str | None) -> str:
        """The unqualified SQL from `from_revision` to head (rendered once, then cached)."""
        if from_revision not in self._rendered:
            buffer = io.StringIO()

            def steps(rev: Any, _context: Any) -> Any:
                return self.script._upgrade_revs("heads", rev)

            with EnvironmentContext(
                self.config,
                self.script,
                fn=steps,
                as_sql=True,
                starting_rev=from_revision,
                destination_rev="heads",
            ) as env:
                env.configure(
                    dialect_name="postgresql",
                    # 'named' leaves % alone (the default pyformat would double it).
                    dialect_opts={"paramstyle": "named"},
                    output_buffer=buffer,
                    transactional_ddl=False,  # the caller owns the transaction
                    literal_binds=True,
                )
                env.run_migrations()
            self._rendered[from_revision] = buffer.getvalue()
        return self._rendered[from_revision]

    async def upgrade(self, conn: AsyncConnection, schema: str) -> bool:
        """Bring `schema` to head inside the caller's transaction; True if anything ran."""
        validate_schema_name(schema)
        current = await conn.run_sync(self.current, schema)
        if current == self.head:
            return False
        script = f'SET LOCAL search_path TO "{schema}";\n{self.upgrade_sql(current)}'
        # asyncpg's simple-query protocol runs the whole script in one round trip;
        # SET LOCAL ends with the transaction, so nothing leaks into the pool.
        raw = await conn.get_raw_connection()
        await raw.driver_connection.execute(script)  # type: ignore[union-attr]
        return True

    async def provision(self, conn: AsyncConnection, schema: str) -> None:
        """Create `schema` and bring it to head, inside the caller's transaction."""
        await conn.execute(text(f'CREATE SCHEMA "{validate_schema_name(schema)}"'))
        await self.upgrade(conn, schema)

    def upgrade_fixed_schema(self, connection: Connection, schema: str) -> bool:
        """Upgrade a schema whose tables name it explicitly (a shared schema), online.

        Takes a transaction-scoped advisory lock, so concurrent runs (two replicas
        starting) queue instead of racing.
        """
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"migrate:{schema}"}
        )
        connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        if self.current(connection, schema) == self.head:
            return False

        def steps(rev: Any, _context: Any) -> Any:
            return self.script._upgrade_revs("heads", rev)

        with EnvironmentContext(self.config, self.script, fn=steps, destination_rev="heads") as env:
            env.configure(connection=connection, version_table_schema=schema)
            env.run_migrations()
        return True

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
                            ran = await self.upgrade(conn, schema)
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
