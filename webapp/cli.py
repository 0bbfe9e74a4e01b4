"""The `formwright` command: the Litestar CLI preset to our app, plus users, tokens and responses commands."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import click
from litestar.plugins import CLIPluginProtocol
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

T = TypeVar("T")


def _run_in_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from webapp.db import create_engine
    from webapp.settings import get_settings

    async def runner() -> T:
        engine = create_engine(get_settings(), pool=False)
        try:
            async with async_sessionmaker(engine, expire_on_commit=False)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(runner())


@contextmanager
def _as_click_errors() -> Iterator[None]:
    """Service errors carry a message meant for people: show it, without a traceback."""
    from webapp.errors import ProblemError

    try:
        yield
    except ProblemError as exc:
        raise click.ClickException(exc.detail) from None


@click.group(name="users", help="Manage user accounts.")
def users_group() -> None:
    pass


@users_group.command(name="create", help="Create a user. Prompts for the password when --password is not given.")
@click.argument("email")
@click.option("--password", help="The password (prompted for, hidden, when omitted).")
def create_user_command(email: str, password: str | None) -> None:
    from webapp.accounts.service import check_email, check_password, create_user

    with _as_click_errors():
        check_email(email)  # before prompting, so a typo does not cost a password entry
        if password is None:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        check_password(password)
        user = _run_in_session(lambda s: create_user(s, email, password))
    click.echo(f"Created user {user.email} ({user.id})")


@click.group(name="tokens", help="Manage API tokens.")
def tokens_group() -> None:
    pass


@tokens_group.command(name="create", help="Create an API token for a user; prints it once, as the last line.")
@click.argument("email")
@click.option("--name", default="cli", show_default=True, help="A name to recognise the token by.")
def create_token_command(email: str, name: str) -> None:
    from webapp.accounts.service import create_token, get_user_by_email

    async def work(session: AsyncSession) -> str:
        user = await get_user_by_email(session, email)
        if user is None:
            raise click.ClickException(
                f"No user with the email {email.strip().lower()}; create one with `formwright users create`."
            )
        token, plaintext = await create_token(session, user, name)
        click.echo(f"Created token {token.name!r} ({token.prefix}…) for {user.email}. Store it now: it is not shown again.")
        return plaintext

    with _as_click_errors():
        plaintext = _run_in_session(work)
    click.echo(plaintext)


@click.group(name="responses", help="Maintain stored responses.")
def responses_group() -> None:
    pass


@responses_group.command(name="backfill", help="Fill the listing copy of responses stored before migration 0003 "
                         "(PostgreSQL; in committed batches, safe to run while the app serves).")
@click.option("--batch-size", default=5_000, show_default=True, type=click.IntRange(1, 100_000))
def backfill_command(batch_size: int) -> None:
    from webapp.db import create_engine
    from webapp.responses.readmodel import backfill
    from webapp.settings import get_settings

    async def runner() -> int:
        engine = create_engine(get_settings(), pool=False)
        try:
            return await backfill(engine, batch_size)
        finally:
            await engine.dispose()

    click.echo(f"{asyncio.run(runner())} responses filled.")


@click.command(name="relay", help="Publish outbox events to RabbitMQ (AMQP_URL) until SIGTERM.")
def relay_command() -> None:
    from webapp.observability import run_process
    from webapp.outbox.relay import run_relay
    from webapp.settings import SettingsError, get_settings

    try:
        settings = get_settings()
        if not settings.amqp_url:
            raise click.ClickException("AMQP_URL is not set. Without a broker there is nothing to relay: the web "
                                       "process delivers from the outbox itself (embedded mode).")
        run_process(run_relay(settings))
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


COMMANDS_GROUP = "formwright.commands"


def plugin_commands() -> list[click.Command]:
    """Commands other packages add through the `formwright.commands` entry-point group (e.g. workers)."""
    from importlib.metadata import entry_points

    commands = []
    for ep in entry_points(group=COMMANDS_GROUP):
        try:
            command = ep.load()
        except Exception as exc:  # a broken plugin must not take the whole CLI down
            click.echo(f"warning: the command {ep.name!r} from {ep.value} cannot be loaded: {exc}", err=True)
            continue
        if isinstance(command, click.Command):
            commands.append(command)
    return commands


class CLIPlugin(CLIPluginProtocol):
    def on_cli_init(self, cli: click.Group) -> None:
        cli.add_command(users_group)
        cli.add_command(tokens_group)
        cli.add_command(responses_group)
        cli.add_command(relay_command)
        for command in plugin_commands():
            cli.add_command(command)


def main() -> None:
    os.environ.setdefault("LITESTAR_APP", "webapp.app:create_app")
    os.environ.setdefault("LITESTAR_HOST", os.environ.get("HOST", "127.0.0.1"))
    os.environ.setdefault("LITESTAR_PORT", os.environ.get("PORT", "8000"))
    from litestar.cli.main import litestar_group

    sys.exit(litestar_group())
