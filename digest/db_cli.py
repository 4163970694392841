"""`digest db status | upgrade | copy FROM TO`: thin commands over dbtools.py."""

from __future__ import annotations

from pathlib import Path

import click

from digest import dbtools
from digest.location import Location, LocationError, parse_location


class LocationParam(click.ParamType):  # type: ignore[type-arg]  # generic in click 8.2+
    """A SQLite file or a postgresql:// URL; another scheme is a usage error."""

    name = "PATH|URL"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> Location:
        if not isinstance(value, str):
            return value  # type: ignore[return-value]
        try:
            return parse_location(value, Path.cwd())
        except LocationError as exc:
            self.fail(str(exc), param, ctx)


def current(ctx: click.Context) -> Location:
    """The store --db, DIGEST_DB or store.path names."""
    location: Location = ctx.find_root().obj.settings.store_path
    return location


@click.group("db")
def db_group() -> None:
    """The database: SQLite (a file) or PostgreSQL (a postgresql:// URL)."""


@db_group.command("status")
@click.pass_context
def db_status(ctx: click.Context) -> None:
    """Backend, where (password hidden), schema version and row counts."""
    found = dbtools.status(current(ctx))
    click.echo(f"Backend: {found.backend}")
    click.echo(f"Database: {found.location}")
    click.echo(f"Schema version: {found.version} (this digest: {dbtools.latest()})")
    width = max((len(table) for table in found.rows), default=0)
    for table, count in found.rows.items():
        click.echo(f"  {table.ljust(width)}  {count}")


@db_group.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply the migrations the database lacks (digest also does on every open)."""
    location = current(ctx)
    before, after = dbtools.upgrade(location)
    if before == after:
        click.echo(f"{location}: schema version {after}, up to date.")
    else:
        click.echo(f"{location}: schema version {before} -> {after}.")


@db_group.command("copy")
@click.argument("source", type=LocationParam())
@click.argument("target", type=LocationParam())
def db_copy(source: Location, target: Location) -> None:
    """Copy the whole store SOURCE into the empty store TARGET (SQLite to PostgreSQL or
    back): subscribers with their salts and token hashes, history, the ledger with its
    frozen plans, webhook counts. Checks every table's row count afterwards."""
    counts = dbtools.copy(source, target)
    click.echo(f"Copied {sum(counts.values())} rows from {source} to {target}:")
    for table, count in counts.items():
        click.echo(f"  {table}  {count}")
