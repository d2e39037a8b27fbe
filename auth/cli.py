"""`flask users ...`: create the first admin, change roles, delete accounts, from a shell."""
from __future__ import annotations

import secrets

import click
from flask.cli import AppGroup

from auth.models import ROLE_ADMIN, ROLES
from auth.users import UserService
from common.context import services
from common.errors import DomainError

users_cli = AppGroup("users", help="Manage user accounts.")


def _users() -> UserService:
    return services().users


@users_cli.command("create-admin")
@click.argument("username")
@click.option("--password", help="The password; prompted for when left out (unless --generate).")
@click.option("--generate", is_flag=True, help="Generate a random password and print it once.")
def create_admin(username: str, password: str | None, generate: bool) -> None:
    """Create an admin account."""
    if generate:
        password = secrets.token_urlsafe(18)
    elif password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.ClickException("the password needs at least 8 characters")
    try:
        user = _users().create(username, password, ROLE_ADMIN)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"created admin {user.username!r} (id {user.id})")
    if generate:
        click.echo(f"password: {password}")


@users_cli.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
def set_role(username: str, role: str) -> None:
    """Make a user an admin, or demote an admin (takes effect on their next request)."""
    try:
        user = _users().set_role(username, role)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{user.username!r} is now {user.role}")


@users_cli.command("delete")
@click.argument("username")
@click.confirmation_option(prompt="Delete this account and its API keys?")
def delete(username: str) -> None:
    """Delete an account; its tokens and API keys stop working at once."""
    try:
        _users().delete(username)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"deleted {username!r}")
