"""`flask ingest USERNAME PATH... [--workspace ID]`: ingest files or whole folders for a user (or
into a workspace), with a progress bar."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from flask.cli import with_appcontext

from common.context import services as app_services
from common.errors import DomainError
from ingest.sniff import EXTENSIONS

BAR_STEPS = 1000


@click.command("ingest")
@with_appcontext
@click.argument("username")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--workspace", "workspace_id", default=None, metavar="ID",
              help="Into this workspace (USERNAME must be an editor or owner there) instead of USERNAME's own space")
def ingest_command(username: str, paths: tuple[Path, ...], workspace_id: str | None) -> None:
    """Ingest files, or every supported file under folders, into USERNAME's documents (or a workspace's)."""
    services = app_services()
    try:
        user = services.users.find(username)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    files = _expand(paths)
    if not files:
        raise click.ClickException(f"no supported files ({', '.join(sorted(EXTENSIONS))}) under the given paths")
    failures = sum(not _ingest_one(services, user.id, path, workspace_id) for path in files)
    click.echo(f"{len(files) - failures} of {len(files)} files ready")
    if failures:
        raise SystemExit(1)


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        candidates = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        found += [p for p in candidates if p.suffix.lower() in EXTENSIONS]
    return found


def _ingest_one(services: Any, user_id: int, path: Path, workspace_id: str | None) -> bool:
    try:
        with path.open("rb") as stream:
            document, created = services.documents.upload(user_id, path.name, stream, workspace_id=workspace_id)
    except DomainError as exc:
        click.echo(f"{path}: {exc.message}", err=True)
        return False
    if not created:
        click.echo(f"{path}: already uploaded as document {document.family_id} ({document.status})")
        return document.status != "failed"
    with click.progressbar(length=BAR_STEPS, label=path.name[:40].ljust(40), show_percent=True) as bar:
        def advance(fraction: float) -> None:
            bar.update(max(0, int(fraction * BAR_STEPS) - bar.pos))

        result = services.ingestion.run_now(document.id, advance)
        if result is None:  # a running server's worker took it first: follow along
            result = services.documents.wait(user_id, document.family_id, services.config.upload_wait_timeout_s)
        advance(1.0)
    if result.status != "ready":
        click.echo(f"{path}: failed: {result.error}", err=True)
        return False
    click.echo(f"{path}: {result.chunks} chunks" + (f", {result.pages} pages" if result.pages else ""))
    return True


@click.command("ingest-worker")
@with_appcontext
@click.option("--threads", default=1, show_default=True, help="Jobs run at once by this process")
def ingest_worker_command(threads: int) -> None:
    """Consume ingestion jobs from the queue (INGEST_QUEUE_URL) until stopped (Ctrl-C or SIGTERM).

    Run one or more of these beside web workers started with INGEST_IN_PROCESS=false."""
    from huey.consumer import Consumer

    services = app_services()
    services.ingestion.recover()
    click.echo(f"consuming ingestion jobs with {threads} thread(s); Ctrl-C stops")
    Consumer(services.ingestion.huey, workers=threads, worker_type="thread", periodic=False,
             max_delay=1.0, check_worker_health=True).run()
