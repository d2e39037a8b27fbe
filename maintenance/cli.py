"""`flask backup create` and `flask backup restore`: archives of the whole install, with progress."""
from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup

from common.context import audit
from common.context import services as app_services
from common.errors import DomainError
from maintenance.backup import BackupService

backup_cli = AppGroup("backup", help="Back up and restore the database, vectors and uploaded files.")


def _service() -> BackupService:
    services = app_services()
    config = services.config
    return BackupService(services.db, services.vectors, config.uploads_dir, config.data_dir)


@backup_cli.command("create")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for the archive (default: $DATA_DIR/backups)")
def create(out_dir: Path | None) -> None:
    """Write a consistent archive while the server keeps running."""
    services = app_services()
    target = out_dir or services.config.data_dir / "backups"
    archive = _service().create(target, progress=lambda step: click.echo(f"  {step}", err=True))
    audit("backup.created", target=archive.name)
    click.echo(str(archive))


@backup_cli.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore(archive: Path) -> None:
    """Load ARCHIVE into this install, which must be empty (a fresh DATA_DIR and database)."""
    try:
        counts = _service().restore(archive, progress=lambda step: click.echo(f"  {step}", err=True))
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    audit("backup.restored", target=archive.name, details={"users": counts.get("users", 0),
                                                           "documents": counts.get("documents", 0)})
    click.echo(f"restored {counts.get('users', 0)} users, {counts.get('documents', 0)} documents, "
               f"{counts.get('chat_sessions', 0)} chat sessions, {counts['chunks']} chunks; "
               f"{counts['requeued']} documents queued for re-ingestion")
    if counts["signing_key_replaced"]:
        click.echo("note: the archive's JWT signing key replaced this install's (DATA_DIR/jwt_secret, mode 0600): "
                   "from the next start it signs tokens unless JWT_SECRET_KEY is set, logins of the backed-up "
                   "install work again and tokens this install issued before stop working")


integrity_cli = AppGroup("integrity", help="Check that the database and the vector store agree, and repair.")


@integrity_cli.command("check")
def integrity_check() -> None:
    """Report problems (exit status 1 when there are some)."""
    services = app_services()
    problems = services.integrity.check().problems()
    for problem in problems:
        click.echo(problem)
    if problems:
        raise SystemExit(1)
    click.echo("no problems found")


@integrity_cli.command("repair")
def integrity_repair() -> None:
    """Remove orphaned chunks, move misplaced ones, queue documents with missing or extra chunks for re-ingestion."""
    services = app_services()
    outcome = services.integrity.repair()
    services.ingestion.recover()  # running servers' sweepers would queue them too
    click.echo(f"queued {outcome.requeued} document(s) for re-ingestion; removed the chunks of {outcome.removed} "
               f"deleted document(s); moved the chunks of {outcome.moved} version(s) to the right collection")
    for problem in outcome.after.problems():
        click.echo(f"still: {problem}")
