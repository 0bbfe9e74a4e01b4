"""Plug-and-play: an integration installed as a package of its own works with no webapp change,
and the `formwright` CLI picks up commands and kinds from entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

from litestar.testing import AsyncTestClient

from tests.pipeline_fixtures import BIN, ROOT, Processes, open_form_with_question, submit, wait_until
from webapp.app import create_app
from webapp.plugins import load_integrations

pytest_plugins = ("tests.pipeline_fixtures",)


async def test_a_separately_installed_package_adds_an_integration_kind(owner, settings, echo_sink):
    # Nothing in the webapp knows about it: it arrives only through the entry-point group.
    assert not [p for p in (ROOT / "webapp").rglob("*.py") if "formwright_echo" in p.read_text()]
    app = create_app(replace(settings, embedded_delivery=True, outbox_poll_seconds=0.1))
    async with AsyncTestClient(app) as client:
        r = await client.get("/api/v1/integrations", headers=owner.headers)
        assert r.status_code == 200, r.text
        kinds = {k["kind"]: k for k in r.json()}
        assert kinds["echo"]["title"] == "Echo (test)"
        assert "path" in str(kinds["echo"]["config_schema"])

        form_id, qid = await open_form_with_question(client, owner)
        url = f"/api/v1/forms/{form_id}/integrations"
        r = await client.post(url, headers=owner.headers, json={"kind": "echo", "name": "Echo",
                                                                "config": {"path": "relative.jsonl"}})
        assert r.status_code == 422, r.text
        assert {"field": "config.path", "message": "Give an absolute path."} in r.json()["errors"]
        r = await client.post(url, headers=owner.headers, json={"kind": "echo", "name": "Echo",
                                                                "config": echo_sink.config()})
        assert r.status_code == 201, r.text

        rid = await submit(client, form_id, qid, "Ada")
        await wait_until(echo_sink.count, timeout=10, what="the new integration to deliver")
    [line] = echo_sink.lines()
    assert (line["response_id"], line["form_title"], line["answers"][0]["text"]) == (rid, "Pipeline", "Ada")


def test_a_broken_plugin_is_reported_and_the_others_still_load(tmp_path, echo_plugin):
    dist = tmp_path / "formwright_broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: formwright-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[formwright.integrations]\nmissing = no_such_module_here:integration\nnotone = json:dumps\n")
    sys.path.insert(0, str(tmp_path))
    load_integrations.cache_clear()
    try:
        registry = load_integrations()
        assert "ModuleNotFoundError" in registry.errors["missing"]
        assert "does not implement the Integration protocol" in registry.errors["notone"]
        assert "echo" in registry.kinds()
    finally:
        sys.path.remove(str(tmp_path))
        load_integrations.cache_clear()


def _cli(env, *args):
    return subprocess.run([str(BIN / "formwright"), *args], env=env, capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


def test_the_cli_explains_what_is_missing(tmp_path, echo_plugin):
    env = {**os.environ, "APP_ENV": "test", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "AMQP_URL": "",
           "PYTHONPATH": str(echo_plugin)}
    r = _cli(env, "relay")
    assert r.returncode != 0 and "AMQP_URL is not set" in r.stderr
    r = _cli({**env, "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/"}, "workers", "run", "nosuch")
    assert r.returncode != 0, r.stdout
    assert "Unknown integration kind(s): nosuch" in r.stderr and "echo" in r.stderr


async def test_workers_run_supervises_one_process_per_kind(tmp_path, rabbit_vhost, echo_plugin):
    env = {**os.environ, "APP_ENV": "test", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "AMQP_URL": rabbit_vhost,
           "AMQP_NAMESPACE": f"sup{os.getpid()}.", "PYTHONPATH": str(echo_plugin), "PYTHONUNBUFFERED": "1"}
    procs = Processes(tmp_path)
    try:
        supervisor = procs.start("workers", [str(BIN / "formwright"), "workers", "run", "echo", "webhook"], env)
        await wait_until(lambda: "kind=echo" in supervisor.log() and "kind=webhook" in supervisor.log(),
                         timeout=60, what="both kinds to consume")
        pids = [line for line in supervisor.log().splitlines() if line.startswith("Supervising workers")]
        assert pids and "echo (pid" in pids[0] and "webhook (pid" in pids[0]
        assert await supervisor.terminate() == 0
        assert supervisor.log().count("worker_stopped") == 2
    finally:
        procs.stop_all()

