"""`formwright workers ...`, added to the CLI through the `formwright.commands` entry-point group.

`workers run sheets` runs that kind's consumer in this process. With several kinds (or none, which
means every installed kind) it supervises one child process per kind, so a slow or crashing
integration cannot hold up the others: SIGTERM/SIGINT is passed on to every child, and a child that
dies unexpectedly is started again after a short pause.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import click


@click.group(name="workers", help="Run the integration workers that consume RabbitMQ (AMQP_URL).")
def workers_group() -> None:
    pass


@workers_group.command(name="run", help="Consume the work queues of these integration kinds (default: all installed).")
@click.argument("kinds", nargs=-1)
def run_command(kinds: tuple[str, ...]) -> None:
    from webapp.plugins import load_integrations
    from webapp.settings import get_settings

    settings = get_settings()
    if not settings.amqp_url:
        raise click.ClickException("AMQP_URL is not set. Without a broker the web process delivers in-process "
                                   "(embedded mode); workers are only needed with RabbitMQ.")
    registry = load_integrations()
    chosen = list(dict.fromkeys(kinds)) or registry.kinds()
    unknown = [k for k in chosen if registry.get(k) is None]
    if unknown or not chosen:
        broken = "".join(f"\n  {name}: {err}" for name, err in registry.errors.items())
        raise click.ClickException(
            f"Unknown integration kind(s): {', '.join(unknown) or '(none installed)'}. "
            f"Installed: {', '.join(registry.kinds()) or 'none'}." + (f"\nFailed to load:{broken}" if broken else ""))
    if len(chosen) == 1:
        from integrations.runtime import run_worker
        from webapp.observability import run_process
        from webapp.settings import SettingsError

        try:
            run_process(run_worker(settings, chosen))
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from None
        return
    sys.exit(_supervise(chosen))


def _spawn(kind: str) -> subprocess.Popen[bytes]:
    # A fixed argv: this interpreter, our module, and a kind that was checked against the installed ones.
    return subprocess.Popen([sys.executable, "-m", "integrations.runtime", kind], env=os.environ.copy())  # noqa: S603


def _supervise(kinds: list[str]) -> int:
    children = {kind: _spawn(kind) for kind in kinds}
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    click.echo(f"Supervising workers: {', '.join(f'{k} (pid {c.pid})' for k, c in children.items())}", err=True)
    while True:
        alive = False
        for kind, child in list(children.items()):
            code = child.poll()
            if code is None:
                alive = True
            elif not stopping:
                click.echo(f"worker {kind} exited with {code}; starting it again", err=True)
                time.sleep(1)
                children[kind] = _spawn(kind)
                alive = True
        if not alive:
            return 0 if all(c.returncode == 0 for c in children.values()) else 1
        time.sleep(0.5)
