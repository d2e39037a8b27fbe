"""`flask db ...`: database maintenance commands."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from api.context import EXTENSION_KEY

db_cli = AppGroup("db", help="Database maintenance.")


@db_cli.command("upgrade")
def upgrade() -> None:
    """Apply pending migrations (the server also does this at start unless AUTO_MIGRATE=false)."""
    current_app.extensions[EXTENSION_KEY].db.migrate()
    click.echo("database is at the newest migration")
