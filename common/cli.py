"""`flask db ...`: database maintenance commands."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from common.context import services

db_cli = AppGroup("db", help="Database maintenance.")


@db_cli.command("upgrade")
def upgrade() -> None:
    """Apply pending migrations (the server also does this at start unless AUTO_MIGRATE=false)."""
    services().db.migrate()
    click.echo("database is at the newest migration")
