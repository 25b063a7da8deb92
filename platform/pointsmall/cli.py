"""`pointsmall serve | worker | webhooks-worker | migrate | makemigration | tenants create/list
| dev`."""

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from pointsmall.settings import Settings

T = TypeVar("T")
app = typer.Typer(help="Pointsmall: a multi-tenant loyalty-points service.", no_args_is_help=True)
tenants_app = typer.Typer(help="Manage tenants (merchants).", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")


def _settings() -> Settings:
    from pointsmall.embedded import ensure_services

    return ensure_services(Settings.from_env())


async def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from pointsmall_tenants import create_pooled_engine

    engine = create_pooled_engine(settings.async_database_url, pool_size=1, max_overflow=0)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            return await work(session)
    finally:
        await engine.dispose()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (env HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (env PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes (env WEB_CONCURRENCY).")] = None,
) -> None:
    """Serve the HTTP API with granian."""
    from granian import Granian
    from granian.constants import Interfaces

    from pointsmall.keyring import MissingKeys, require_keys

    settings = _settings()
    try:
        require_keys(settings)  # before granian: its workers would only crash and respawn
    except MissingKeys as missing:
        typer.echo(str(missing), err=True)
        raise typer.Exit(2) from missing
    host, port = host or settings.host, port or settings.port
    typer.echo(f"Pointsmall API on http://{host}:{port}  (docs: http://{host}:{port}/schema)")
    Granian(
        "pointsmall.app:create_app",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers or settings.workers,
        log_access=False,
    ).serve()


@app.command()
def worker() -> None:
    """Run the arq worker (background jobs and cron)."""
    from arq.worker import Worker

    from pointsmall.jobs import worker_settings
    from pointsmall.observability import configure_logging

    settings = _settings()
    configure_logging(settings.log_level)
    Worker(**worker_settings(settings)).run()


@app.command("webhooks-worker")
def webhooks_worker() -> None:
    """Run the webhook worker: relays the outbox and delivers (scale it on its own)."""
    from arq.worker import Worker

    from pointsmall.observability import configure_logging
    from pointsmall.webhooks.jobs import webhook_worker_settings

    settings = _settings()
    configure_logging(settings.log_level)
    _fast_event_loop()
    Worker(**webhook_worker_settings(settings)).run()


def _fast_event_loop() -> None:
    """uvloop where it exists: a delivery is mostly socket work, and uvloop does that with
    much less CPU than the standard loop."""
    try:
        import uvloop
    except ImportError:  # Windows
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _migrate(settings: Settings, concurrency: int) -> None:
    from pointsmall.migrations import shared_migrations, tenant_migrations
    from pointsmall.tenancy.services import migration_schemas
    from pointsmall_tenants import FanOutFailed, create_pooled_engine

    engine = create_pooled_engine(
        settings.async_database_url, pool_size=concurrency, max_overflow=0
    )
    try:
        async with engine.begin() as conn:
            await conn.run_sync(shared_migrations().upgrade_fixed_schema, "shared")
        async with AsyncSession(engine) as session:
            schemas = await migration_schemas(session)
        try:
            report = await tenant_migrations().fan_out(engine, schemas, concurrency=concurrency)
        except FanOutFailed as failed:
            typer.echo(
                f"FAILED at schema {failed.schema} after {len(failed.report.upgraded)} upgraded: "
                f"{failed.cause}",
                err=True,
            )
            raise typer.Exit(1) from failed
        typer.echo(
            f"shared schema current; tenants: {len(report.upgraded)} upgraded, "
            f"{report.already_current} already current, {report.seconds:.2f}s"
        )
    finally:
        await engine.dispose()


@app.command()
def migrate(
    concurrency: Annotated[int | None, typer.Option(help="Schemas migrated at once.")] = None,
) -> None:
    """Upgrade the shared schema, then every tenant schema (resumable; stops at a failure)."""
    settings = _settings()
    asyncio.run(_migrate(settings, concurrency or settings.migrate_concurrency))


@app.command()
def makemigration(
    message: Annotated[str, typer.Option("-m", "--message", help="What the revision does.")],
    tenant: Annotated[bool, typer.Option(help="A tenant-schema revision (else shared).")] = False,
) -> None:
    """Autogenerate a revision from the models (tenant ones against a throwaway template schema)."""
    from pointsmall.migrations import autogenerate_revision

    asyncio.run(autogenerate_revision(_settings(), message, tenant=tenant))


@tenants_app.command("create")
def tenants_create(
    name: Annotated[str, typer.Option(help="The merchant's name.")],
    slug: Annotated[
        str | None, typer.Option(help="URL-safe handle (derived from name if absent).")
    ] = None,
) -> None:
    """Create a tenant and print its first API key (shown once)."""
    from pointsmall.auth.schemas import ApiKeyCreate
    from pointsmall.auth.services import issue
    from pointsmall.migrations import tenant_migrations
    from pointsmall.tenancy.services import provision

    async def create(session: AsyncSession) -> tuple[str, str, str]:
        tenant = await provision(session, tenant_migrations(), name=name, slug=slug)
        key = await issue(session, tenant.id, ApiKeyCreate(name="Default key"))
        return tenant.id, tenant.slug, key.secret

    typer.echo("\t".join(asyncio.run(_in_transaction(_settings(), create))))


@tenants_app.command("list")
def tenants_list() -> None:
    """List tenants: id, slug, name."""
    from pointsmall.tenancy.services import list_tenants

    for tenant in asyncio.run(_in_transaction(_settings(), list_tenants)):
        typer.echo(f"{tenant.id}\t{tenant.slug}\t{tenant.name}")


@app.command()
def dev() -> None:
    """Everything for local work, supervised: embedded services if no URLs, migrations, the
    API and both workers, each restarted if it dies; Ctrl-C stops them all."""
    from pointsmall.supervisor import run_dev

    # Local work: http:// webhook URLs, and receivers on this machine, are fine.
    os.environ.setdefault("POINTSMALL_ENV", "development")
    os.environ.setdefault("WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
    raise typer.Exit(run_dev(Settings.from_env()))


def main() -> None:
    app()
