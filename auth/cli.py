"""`flask users ...`: create admins, list accounts, change roles, reset passwords, disable and delete accounts."""
from __future__ import annotations

import secrets

import click
from flask.cli import AppGroup

from auth.models import ROLE_ADMIN, ROLES
from auth.users import UserService, UserView
from common.context import audit, services
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
        before = _users().find(username)
        user = _users().set_role(username, role)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    if before.role != user.role:
        audit("user.role_changed", target=user.username, details={"from": before.role, "to": user.role})
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
    audit("user.deleted", target=username)
    click.echo(f"deleted {username!r}")


@users_cli.command("list")
@click.option("--search", "query", default="", help="Only names containing this.")
def list_users(query: str) -> None:
    """List accounts: id, name, role, state, last login."""
    page, total = 1, 1
    users: list[UserView] = []
    while len(users) < total:
        found, total = _users().page(query, page, 200)
        users += found
        page += 1
        if not found:
            break
    for user in users:
        state = "disabled" if user.disabled else "must change password" if user.must_change_password else "active"
        last = user.last_login.isoformat(timespec="seconds") if user.last_login else "never"
        click.echo(f"{user.id:>6}  {user.username:<32} {user.role:<6} {state:<20} last login {last}")
    click.echo(f"{len(users)} account(s)")


@users_cli.command("reset-password")
@click.argument("username")
def reset_password(username: str) -> None:
    """Give an account a temporary password (printed once); it must change it at its next login."""
    try:
        user, temporary = _users().reset_password(_users().find(username).id)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    audit("password.reset", target=user.username)
    click.echo(f"temporary password for {user.username!r}: {temporary}")


@users_cli.command("disable")
@click.argument("username")
@click.option("--enable", is_flag=True, help="Enable the account again instead.")
def disable(username: str, enable: bool) -> None:
    """Disable an account (every credential of it is refused at once), or enable it again."""
    try:
        user = _users().update(_users().find(username).id, disabled=not enable)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    audit("user.enabled" if enable else "user.disabled", target=user.username)
    click.echo(f"{user.username!r} is {'enabled' if enable else 'disabled'}")
