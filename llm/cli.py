"""`flask models reload`: reload the model engine of every running server process on this DATA_DIR."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from common.context import services
from llm.recovery import REPLIES_DIR

models_cli = AppGroup("models", help="The running servers' language model.")


@models_cli.command("reload")
@click.option("--wait", "wait_s", type=float, default=120.0, show_default=True,
              help="Seconds to wait at most for the server processes' answers (each looks every WATCHDOG_S)")
def reload_engines(wait_s: float) -> None:
    """Ask each server process to load a fresh engine for its model (no restart; requests waiting
    move to it, the batch inside the old engine fails with 503 ENGINE_RESTARTED)."""
    svc = services()
    if svc.config.watchdog_s <= 0:
        raise click.ClickException("WATCHDOG_S is 0: the servers do not look for reload requests; "
                                   "use POST /models/reload instead")
    click.echo(f"asked the servers on {svc.config.data_dir}; waiting {wait_s:g} s for their answers", err=True)
    answers = svc.recovery.request_reload(wait_s, settle_s=svc.config.watchdog_s + 2)
    for answer in answers:
        click.echo(f"process {answer.pid}: {answer.model} reloaded in {answer.reload_seconds} s, "
                   f"{answer.requests_failed} request(s) failed, {answer.requests_moved} moved")
    if not answers:
        raise click.ClickException(f"no server process answered within {wait_s:g} s (is one running on this "
                                   f"DATA_DIR? its log says why a reload failed; replies go to {REPLIES_DIR}/)")
