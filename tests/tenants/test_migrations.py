"""Tenant migrations: provisioning is atomic; fan-out is bounded, resumable, and names a failure."""

import shutil
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pointsmall.migrations import TENANT_LOCATION, tenant_migrations
from pointsmall_tenants import (
    FanOutFailed,
    InvalidSchemaName,
    SchemaMigrations,
    schema_for_tenant,
    validate_schema_name,
)


def _with_extra_revision(tmp_path: Path, body: str) -> SchemaMigrations:
    """A copy of the tenant migrations plus one revision (as a developer would add it)."""
    location = tmp_path / "tenant"
    shutil.copytree(TENANT_LOCATION, location, ignore=shutil.ignore_patterns("__pycache__"))
    head = tenant_migrations().head
    steps = textwrap.indent(textwrap.dedent(body).strip(), "    ")
    (location / "versions" / "zz_extra.py").write_text(
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f'revision = "e0e0e0e0e0e0"\ndown_revision = {head!r}\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade() -> None:\n{steps}\n"
    )
    return SchemaMigrations(str(location))


async def _provision(engine: AsyncEngine, schemas: list[str]) -> None:
    migrations = tenant_migrations()
    for schema in schemas:
        async with engine.begin() as conn:
            await migrations.provision(conn, schema)


async def _drop(engine: AsyncEngine, schemas: list[str]) -> None:
    async with engine.begin() as conn:
        for schema in schemas:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


async def _version(engine: AsyncEngine, schema: str) -> str:
    async with engine.connect() as conn:
        return str(
            (
                await conn.execute(text(f'SELECT version_num FROM "{schema}".alembic_version'))
            ).scalar_one()
        )


async def test_fan_out_upgrades_each_schema_and_resumes(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    schemas = [f"t_fan{i:02d}" for i in range(12)]
    await _provision(engine, schemas)
    try:
        extra = _with_extra_revision(
            tmp_path,
            """
            op.add_column("members", sa.Column("nickname", sa.String(50)))
            op.create_index("ix_members_nickname", "members", ["nickname"])
            """,
        )
        first = await extra.fan_out(engine, schemas[:5], concurrency=3)
        assert sorted(first.upgraded) == schemas[:5]
        resumed = await extra.fan_out(engine, schemas, concurrency=3)
        assert sorted(resumed.upgraded) == schemas[5:]
        assert resumed.already_current == 5
        for schema in schemas:
            assert await _version(engine, schema) == "e0e0e0e0e0e0"
            async with engine.connect() as conn:
                column = await conn.execute(
                    text(
                        "SELECT 1 FROM information_schema.columns WHERE table_schema = :s"
                        " AND table_name = 'members' AND column_name = 'nickname'"
                    ),
                    {"s": schema},
                )
                assert column.scalar_one() == 1
    finally:
        await _drop(engine, schemas)


async def test_fan_out_stops_at_failure_and_names_the_schema(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    schemas = [f"t_brk{i:02d}" for i in range(6)]
    await _provision(engine, schemas)
    try:
        # t_brk03 already has the column the migration adds, so its migration fails.
        async with engine.begin() as conn:
            await conn.execute(text('ALTER TABLE "t_brk03".members ADD COLUMN nickname text'))
        extra = _with_extra_revision(
            tmp_path, 'op.add_column("members", sa.Column("nickname", sa.String(50)))'
        )
        with pytest.raises(FanOutFailed) as failed:
            await extra.fan_out(engine, schemas, concurrency=1)
        assert failed.value.schema == "t_brk03"
        assert failed.value.report.upgraded == schemas[:3]
        # The failed schema kept its old version whole (its transaction rolled back).
        assert await _version(engine, "t_brk03") == tenant_migrations().head
        assert await _version(engine, "t_brk04") == tenant_migrations().head
        # Fix the schema, run again: it resumes with the rest.
        async with engine.begin() as conn:
            await conn.execute(text('ALTER TABLE "t_brk03".members DROP COLUMN nickname'))
        resumed = await extra.fan_out(engine, schemas, concurrency=2)
        assert sorted(resumed.upgraded) == schemas[3:]
    finally:
        await _drop(engine, schemas)


async def test_provisioning_is_one_transaction(engine: AsyncEngine, tmp_path: Path) -> None:
    """A migration failing half-way leaves no schema behind."""
    broken = _with_extra_revision(tmp_path, 'op.execute("SELECT 1/0")')
    with pytest.raises(Exception, match="division by zero"):
        async with engine.begin() as conn:
            await broken.provision(conn, "t_halfway")
    async with engine.connect() as conn:
        found = await conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = 't_halfway'"))
        assert found.first() is None


@pytest.mark.parametrize(
    "name", ["public", "t_", "t_A", "t_a;drop", 't_"x"', "pg_temp", "t_" + "a" * 61]
)
def test_schema_names_are_checked(name: str) -> None:
    with pytest.raises(InvalidSchemaName):
        validate_schema_name(name)


def test_schema_for_tenant() -> None:
    assert schema_for_tenant("ten_01ABCxyz") == "t_01abcxyz"
    with pytest.raises(InvalidSchemaName):
        schema_for_tenant("ten_bad-id")
