"""`make bench`: start the production server on PostgreSQL, load it with wrk, check nothing was lost.

    make bench                                   # every scenario, 20 s each
    make bench BENCH_ARGS="--duration 5 --only submit_api,definition"

Writes bench/results/<timestamp>.md and .json (ignored by git).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from bench import data, wrk

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PORT = int(os.environ.get("BENCH_PORT", "8765"))
BASE = f"http://127.0.0.1:{PORT}"
DB_NAME = os.environ.get("BENCH_DB", "formwright_bench")
PG_SERVER = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


def database_url() -> str:
    return f"{PG_SERVER.replace('postgresql://', 'postgresql+asyncpg://')}/{DB_NAME}"


class Server:
    """`make run-prod` in its own process group, stopped with SIGTERM like a real deployment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = RESULTS / "server.log"

    def __enter__(self) -> Server:
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["make", "--no-print-directory", "run-prod"], cwd=ROOT, env=self.env,
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"run-prod exited early; see {self.log}")
            try:
                if httpx.get(f"{BASE}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"run-prod did not answer within 60 s; see {self.log}")

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-g", str(os.getpgid(self.proc.pid)), "-f", "multiprocessing"],
                             capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(os.getpgid(self.proc.pid), signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(os.getpgid(self.proc.pid), signal.SIGKILL)


def machine_state() -> dict[str, Any]:
    load = os.getloadavg()
    mem = {k: v for k, v in (ln.split(":", 1) for ln in Path("/proc/meminfo").read_text().splitlines()[:3])}
    return {
        "cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in load], "python": platform.python_version(),
        "kernel": platform.release(), "memory": {k: v.strip() for k, v in mem.items()},
        "postgres": data.pg_version(), "wrk": "2 threads, 32 connections",
    }


def scenario_list(ctx: dict[str, Any], duration: int) -> dict[str, Callable[[], dict[str, Any]]]:
    form_id, token = ctx["form_id"], ctx["token"]
    auth = {"Authorization": f"Bearer {token}"}
    api_body = json.dumps({"answers": ctx["answers"]})
    # The reference shape: answers as text (lists stay lists for multiple choice).
    compat_body = json.dumps({"answers": [{"QuestionId": k, "text": v if isinstance(v, str | list) else str(v)}
                                          for k, v in ctx["answers"].items()]})

    def submit_api() -> dict[str, Any]:
        return _submission("submit_api", f"{BASE}/api/v1/forms/{form_id}/responses", wrk.post_lua(api_body),
                           ctx, duration)

    def submit_compat() -> dict[str, Any]:
        return _submission("submit_compat", f"{BASE}/form/{form_id}", wrk.post_lua(compat_body), ctx, duration)

    def submit_page() -> dict[str, Any]:
        """As a browser posts the respondent page: urlencoded, CSRF cookie + field, empty honeypot."""
        page = httpx.get(f"{BASE}/f/{ctx['slug']}")
        match = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        if page.status_code != 200 or match is None:
            return {"name": "submit_page", "skipped": f"/f/{{slug}} answered {page.status_code} without a CSRF field"}
        fields: list[tuple[str, str]] = [("_csrf_token", match.group(1)), ("fw_website", "")]
        for qid, value in ctx["answers"].items():
            for v in value if isinstance(value, list) else [value]:
                fields.append((qid, str(v)))
        cookie = "; ".join(f"{k}={v}" for k, v in page.cookies.items())
        lua = wrk.post_lua(urlencode(fields), "application/x-www-form-urlencoded", {"Cookie": cookie})
        return _submission("submit_page", f"{BASE}/f/{ctx['slug']}", lua, ctx, duration)

    def relay() -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-m", "bench.relay_bench", "--events", "20000"], cwd=ROOT,
                             capture_output=True, text=True, timeout=900)
        match = re.search(r"= ([\d,]+) events/s", out.stdout)
        if match is None:
            return {"name": "relay", "error": (out.stdout + out.stderr)[-500:]}
        return {"name": "relay", "events_per_s": int(match.group(1).replace(",", "")), "output": out.stdout.strip()}

    def pipeline_latency() -> dict[str, Any]:
        """Submission → row in the fake Sheet at a steady 200/s, relay and worker as processes."""
        out = subprocess.run([sys.executable, "-m", "bench.pipeline_latency", "--rate", "200",
                              "--seconds", str(duration)], cwd=ROOT, capture_output=True, text=True, timeout=900)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            return {"name": "pipeline_latency", "error": (out.stdout + out.stderr)[-500:]}
        return {"name": "pipeline_latency", **json.loads(lines[-1])}

    def definition() -> dict[str, Any]:
        return wrk.as_dict(wrk.run("definition", f"{BASE}/api/v1/forms/{form_id}", duration=duration))

    def public_page() -> dict[str, Any]:
        r = httpx.get(f"{BASE}/f/{ctx['slug']}")
        if r.status_code != 200:
            return {"name": "public_page", "skipped": f"/f/{{slug}} answered {r.status_code}"}
        return wrk.as_dict(wrk.run("public_page", f"{BASE}/f/{ctx['slug']}", duration=duration))

    def responses_page() -> dict[str, Any]:
        return data.responses_page_scenario(BASE, auth, duration, database_url())

    def export_csv() -> dict[str, Any]:
        return data.export_scenario(BASE, auth, ctx["server"], database_url())

    return {
        "submit_api": submit_api, "submit_compat": submit_compat, "submit_page": submit_page,
        "definition": definition,
        "public_page": public_page, "responses_page": responses_page, "export_csv": export_csv, "relay": relay,
        "pipeline_latency": pipeline_latency,
    }


def _submission(name: str, url: str, lua: str, ctx: dict[str, Any], duration: int) -> dict[str, Any]:
    wrk.run(name, url, lua=lua, duration=wrk.WARMUP, warmup=0)  # not counted, and before the count below
    before = asyncio.run(data.form_counts(database_url(), ctx["form_id"]))
    result = wrk.as_dict(wrk.run(name, url, lua=lua, duration=duration, warmup=0))
    time.sleep(1)  # let the last in-flight requests commit
    after = asyncio.run(data.form_counts(database_url(), ctx["form_id"]))
    accepted = result["requests"] - result["non2xx"]
    stored = after["responses"] - before["responses"]
    result["check"] = {
        "accepted_by_wrk": accepted,
        "stored_responses": stored,
        "responses_missing_answers": after["incomplete"],
        "responses_without_outbox_event": after["without_event"],
        "ok": stored >= accepted and after["incomplete"] == 0 and after["without_event"] == 0,
    }
    return result


def write_report(report: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = report["started_at"].replace(":", "").replace("-", "")[:15]
    (RESULTS / f"{stamp}.json").write_text(json.dumps(report, indent=2, default=str))
    lines = [f"# Formwright benchmark {report['started_at']}", "", "Machine: " + json.dumps(report["machine"]), "",
             "| scenario | req/s | p50 ms | p99 ms | requests | errors |", "|---|---|---|---|---|---|"]
    for res in report["scenarios"].values():
        if "rps" in res:
            lines.append(wrk.WrkResult(**{k: res[k] for k in wrk.WrkResult.__dataclass_fields__}).row())
    lines.append("")
    for name, res in report["scenarios"].items():
        extra = {k: v for k, v in res.items() if k not in wrk.WrkResult.__dataclass_fields__}
        if extra:
            lines.append(f"- **{name}**: `{json.dumps(extra, default=str)}`")
    if "ceiling" in report:
        lines += ["", f"pgbench ceiling (response + 10 answers + outbox, 32 clients, prepared): "
                      f"{report['ceiling']['tps']:,.0f} tps"]
        for name, share in report.get("share_of_ceiling", {}).items():
            lines.append(f"- {name}: {share:.1%} of the ceiling")
    path = RESULTS / f"{stamp}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", "20")))
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--skip-ceiling", action="store_true")
    args = parser.parse_args()
    wrk.require_wrk()

    asyncio.run(data.ensure_database(PG_SERVER, DB_NAME))
    env = {**os.environ, "DATABASE_URL": database_url(), "PORT": str(PORT), "HOST": "127.0.0.1",
           "APP_ENV": "production", "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret"),
           "SUBMIT_RATE_PER_MINUTE": "0", "LOG_LEVEL": "WARNING", "AMQP_URL": "",
           # As in production, delivery is the relay's and the workers' job, not the web processes'
           # (the relay is measured on its own below).
           "EMBEDDED_DELIVERY": "false"}
    report: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                              "machine": machine_state(), "scenarios": {}}
    with Server(env) as server:
        ctx = asyncio.run(data.prepare(BASE, database_url()))
        ctx["server"] = server
        scenarios = scenario_list(ctx, args.duration)
        wanted = [s for s in args.only.split(",") if s] or list(scenarios)
        for name in wanted:
            print(f"== {name}", flush=True)
            settled = asyncio.run(data.settle(database_url()))
            report["scenarios"][name] = scenarios[name]()
            report["scenarios"][name]["settled_s"] = settled
            print(json.dumps(report["scenarios"][name], default=str), flush=True)
    if not args.skip_ceiling:
        report["ceiling"] = data.pgbench_ceiling(PG_SERVER, DB_NAME, args.duration)
        tps = report["ceiling"]["tps"]
        report["share_of_ceiling"] = {n: r["rps"] / tps for n, r in report["scenarios"].items()
                                      if n.startswith("submit") and "rps" in r}
    path = write_report(report)
    print(path.read_text())
    failed = [n for n, r in report["scenarios"].items() if r.get("check", {}).get("ok") is False]
    if failed:
        print(f"LOST OR INCOMPLETE SUBMISSIONS in: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
