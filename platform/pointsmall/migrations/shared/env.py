"""Used by `pointsmall migrate revision` (autogenerate) only; upgrades run through
`pointsmall_tenants.SchemaMigrations`, which does not execute this file."""

from alembic import context

from pointsmall.migrations import autogenerate_environment

autogenerate_environment(context)
