"""Bench data: the bench user and forms, set-based generation of large forms, the pgbench ceiling."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx

from bench import wrk
from webapp.responses.readmodel import answer_sql, order_stamp

BENCH_EMAIL = "bench@formwright.invalid"
# Ten questions of mixed kinds, five mandatory, as in the issue.
QUESTIONS: list[dict[str, Any]] = [
    {"text": "Full name", "kind": "short_text", "mandatory": True},
    {"text": "Email", "kind": "email", "mandatory": True},
    {"text": "Phone", "kind": "phone", "mandatory": True},
    {"text": "Age", "kind": "number", "mandatory": True, "constraints": {"min": 0, "max": 130, "integer_only": True}},
    {"text": "Plan", "kind": "single_choice", "mandatory": True, "options": ["Free", "Pro", "Team"]},
    {"text": "Interests", "kind": "multiple_choice", "options": ["Forms", "Sheets", "SMS", "Webhooks"]},
    {"text": "Country", "kind": "dropdown", "options": ["FR", "DE", "US", "KE", "IN"]},
    {"text": "Start date", "kind": "date"},
    {"text": "Satisfaction", "kind": "rating", "constraints": {"scale": 5}},
    {"text": "Comments", "kind": "long_text"},
]
ANSWERS: list[Any] = ["Ada Lovelace", "ada@example.com", "+1 202 555 0143", 36, "Pro", ["Forms", "SMS"], "KE",
                      "2026-01-15", 4, "Fast and reliable, thank you."]


def _dsn(server: str, db: str) -> str:
    return f"{server}/{db}"


def pg_version() -> str:
    try:
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "show server_version", "postgres"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        return out or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


async def ensure_database(server: str, name: str) -> None:
    conn = await asyncpg.connect(_dsn(server, "postgres"))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _token(db_url: str) -> str:
    from dataclasses import replace

    from sqlalchemy.ext.asyncio import async_sessionmaker

    from webapp.accounts.service import create_token, create_user, get_user_by_email
    from webapp.db import create_engine
    from webapp.settings import Settings

    engine = create_engine(replace(Settings(), database_url=db_url), pool=False)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as s, s.begin():
            user = await get_user_by_email(s, BENCH_EMAIL) or await create_user(s, BENCH_EMAIL, os.urandom(16).hex())
            _, token = await create_token(s, user, "bench")
        return token
    finally:
        await engine.dispose()


def _create_form(base: str, auth: dict[str, str], title: str) -> dict[str, Any]:
    r = httpx.post(f"{base}/api/v1/forms", headers=auth, timeout=30,
                   json={"title": title, "status": "open", "questions": QUESTIONS})
    r.raise_for_status()
    return r.json()


async def prepare(base: str, db_url: str) -> dict[str, Any]:
    token = await _token(db_url)
    auth = {"Authorization": f"Bearer {token}"}
    form = _create_form(base, auth, f"bench {time.strftime('%Y-%m-%d %H:%M:%S')}")
    answers = {q["id"]: a for q, a in zip(form["questions"], ANSWERS, strict=True)}
    probe = httpx.post(f"{base}/api/v1/forms/{form['id']}/responses", json={"answers": answers}, timeout=30)
    probe.raise_for_status()
    return {"token": token, "form_id": form["id"], "slug": form["slug"], "answers": answers, "base": base,
            "db_url": db_url}


def _pg(db_url: str) -> str:
    return db_url.replace("postgresql+asyncpg://", "postgresql://")


async def settle(db_url: str, limit: float = 120.0) -> float:
    """Let the database finish the background work a write scenario left (a checkpoint of its WAL,
    autovacuum of the tables it grew), so the next scenario is measured on its own. Seconds waited."""
    started = time.monotonic()
    conn = await asyncpg.connect(_pg(db_url))
    try:
        await conn.execute("CHECKPOINT")
        while time.monotonic() - started < limit:
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' "
                "AND datname = current_database()")
            if not busy:
                break
            await asyncio.sleep(1)
    finally:
        await conn.close()
    return round(time.monotonic() - started, 1)


async def form_counts(db_url: str, form_id: str) -> dict[str, int]:
    conn = await asyncpg.connect(_pg(db_url))
    try:
        row = await conn.fetchrow(
            """
            SELECT count(*) AS responses,
                   count(*) FILTER (WHERE n.answers IS DISTINCT FROM qa.expected) AS incomplete,
                   count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM outbox_events o
                                                      WHERE o.response_id = r.id)) AS without_event
            FROM responses r
            CROSS JOIN (SELECT count(*) AS expected FROM questions WHERE form_id = $1) qa
            LEFT JOIN LATERAL (SELECT count(*) AS answers FROM answers a WHERE a.response_id = r.id) n ON true
            WHERE r.form_id = $1
            """,
            _uuid(form_id),
        )
        return dict(row)
    finally:
        await conn.close()


def _uuid(value: str) -> Any:
    import uuid

    return uuid.UUID(value)


# ---- large forms, generated with set-based SQL and kept between runs ---------------------------

# One statement per chunk: the answers of the chunk's responses (v), then the responses with their
# listing copy of those answers (as readmodel.columns writes it; $4 is the order stamp), then the
# answers themselves.
_GENERATE = """
WITH s AS (
  SELECT gen_random_uuid() AS id, now() - make_interval(secs => g * 0.5) AS ts
  FROM generate_series($2::int, $3::int) g
), v AS (
  SELECT s.id AS rid, q.id AS qid, q.position, v0.value,
         CASE jsonb_typeof(v0.value) WHEN 'array' THEN v0.value->>0 ELSE v0.value #>> '{}' END AS text
  FROM s
  JOIN questions q ON q.form_id = $1
  CROSS JOIN LATERAL (SELECT abs(hashtext(s.id::text)) AS h) x
  CROSS JOIN LATERAL (
    SELECT CASE q.kind
        WHEN 'number' THEN to_jsonb(x.h % 90 + 10)
        WHEN 'rating' THEN to_jsonb(x.h % 5 + 1)
        WHEN 'multiple_choice' THEN jsonb_build_array(q.options->>(x.h % 4))
        WHEN 'single_choice' THEN q.options->(x.h % 3)
        WHEN 'dropdown' THEN q.options->(x.h % 5)
        WHEN 'date' THEN to_jsonb(to_char(date '2026-01-01' + (x.h % 300), 'YYYY-MM-DD'))
        WHEN 'email' THEN to_jsonb('person' || (x.h % 100000) || '@example.com')
        WHEN 'phone' THEN to_jsonb('+1202555' || lpad((x.h % 10000)::text, 4, '0'))
        ELSE to_jsonb('Answer ' || (x.h % 100000)) END AS value) v0
), copies AS (
  SELECT rid, '[' || string_agg(__ANSWER__, ',' ORDER BY position, qid) || ']' AS doc
  FROM v GROUP BY rid
), r AS (
  INSERT INTO responses (id, form_id, submitted_at, updated_at, form_version, status, answers_json, answers_order)
  SELECT s.id, $1, s.ts, s.ts, 1, 'complete', c.doc, $4 FROM s JOIN copies c ON c.rid = s.id
)
INSERT INTO answers (id, response_id, question_id, value, text)
SELECT gen_random_uuid(), v.rid, v.qid, v.value, v.text FROM v
""".replace("__ANSWER__", answer_sql("qid", "value", "text"))


async def large_form(base: str, auth: dict[str, str], db_url: str, size: int) -> dict[str, Any]:
    """A form holding `size` responses with 10 answers each; reused between runs."""
    title = f"bench-large-{size}"
    conn = await asyncpg.connect(_pg(db_url))
    try:
        await conn.execute("SET synchronous_commit = off")
        form_id = await conn.fetchval(
            "SELECT f.id FROM forms f JOIN users u ON u.id = f.owner_id WHERE u.email = $1 AND f.title = $2",
            BENCH_EMAIL, title)
        if form_id is None:
            form_id = _uuid(_create_form(base, auth, title)["id"])
        have = await conn.fetchval("SELECT count(*) FROM responses WHERE form_id = $1", form_id)
        order = await conn.fetch("SELECT id FROM questions WHERE form_id = $1 ORDER BY position, id", form_id)
        stamp = order_stamp(row[0] for row in order)
        started = time.monotonic()
        chunk = 100_000
        while have < size:
            n = min(chunk, size - have)
            await conn.execute(_GENERATE, form_id, have + 1, have + n, stamp)
            have += n
            print(f"   generated {have:,}/{size:,} responses for {title}", flush=True)
        if time.monotonic() - started > 1:
            # What autovacuum would reach by itself some minutes later (statistics, visibility map,
            # hint bits), done now so that it does not land in the middle of a measurement.
            await conn.execute("VACUUM (ANALYZE) responses, answers")
        mid = await conn.fetchrow(
            "SELECT submitted_at, id FROM responses WHERE form_id = $1 ORDER BY submitted_at DESC, id DESC "
            "OFFSET $2 LIMIT 1", form_id, size // 2)
        return {"form_id": str(form_id), "size": size, "mid": (mid["submitted_at"], mid["id"])}
    finally:
        await conn.close()


def responses_page_scenario(base: str, auth: dict[str, str], duration: int, db_url: str) -> dict[str, Any]:
    from webapp.responses.service import encode_cursor

    out: dict[str, Any] = {"name": "responses_page"}
    for size in (10_000, 1_000_000):
        form = asyncio.run(large_form(base, auth, db_url, size))
        cursor = encode_cursor(*form["mid"])
        for label, query in (("first", ""), ("deep", f"&cursor={cursor}")):
            url = f"{base}/api/v1/forms/{form['form_id']}/responses?limit=50{query}"
            check = httpx.get(url, headers=auth, timeout=30)
            check.raise_for_status()
            assert len(check.json()["items"]) == 50
            res = wrk.run(f"responses_page_{size}_{label}", url, lua=wrk.get_lua(auth), duration=duration)
            out[f"{size}_{label}"] = wrk.as_dict(res)
    for label in ("first", "deep"):
        small, big = out[f"10000_{label}"], out[f"1000000_{label}"]
        out[f"latency_ratio_{label}_p50"] = big["p50_ms"] / small["p50_ms"]
    return out


def _rss_peak_kb(pids: list[int]) -> int:
    peak = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        if match:
            peak = max(peak, int(match.group(1)))
    return peak


def export_scenario(base: str, auth: dict[str, str], server: Any, db_url: str) -> dict[str, Any]:
    form = asyncio.run(large_form(base, auth, db_url, 1_000_000))
    url = f"{base}/api/v1/forms/{form['form_id']}/responses.csv"
    probe = httpx.get(url, headers=auth, timeout=30, params={"limit": 1})
    if probe.status_code == 404 and "Form" not in probe.text:
        return {"name": "export_csv", "skipped": "no CSV export endpoint"}
    rss_before = _rss_peak_kb(server.worker_pids())
    started = time.monotonic()
    rows = -1  # the header line
    size = 0
    with httpx.stream("GET", url, headers=auth, timeout=600) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            rows += chunk.count(b"\n")
            size += len(chunk)
    seconds = time.monotonic() - started
    return {"name": "export_csv", "rows": rows, "seconds": round(seconds, 2), "rows_per_s": rows / seconds,
            "bytes": size, "worker_peak_rss_mb_before": rss_before / 1024,
            "worker_peak_rss_mb": _rss_peak_kb(server.worker_pids()) / 1024}


# ---- the pgbench ceiling ------------------------------------------------------------------------

def pgbench_ceiling(server: str, db: str, duration: int) -> dict[str, Any]:
    """The same durable write as a submission, in raw SQL: the most this machine can do."""
    import uuid

    dsn = _dsn(server, db)
    parts = urlsplit(dsn)

    async def setup() -> tuple[str, list[str]]:
        conn = await asyncpg.connect(dsn)
        try:
            owner = await conn.fetchval("SELECT id FROM users WHERE email = $1", BENCH_EMAIL)
            fid = uuid.uuid4()
            await conn.execute(
                "INSERT INTO forms (id, owner_id, title, description, status, slug, confirmation_message, version,"
                " created_at, updated_at) VALUES ($1, $2, 'pgbench ceiling', '', 'open', $3, '', 1, now(), now())",
                fid, owner, uuid.uuid4().hex[:12])
            qids = []
            for i in range(10):
                qid = uuid.uuid4()
                await conn.execute(
                    "INSERT INTO questions (id, form_id, position, kind, text, help_text, mandatory, options,"
                    " constraints, created_at, updated_at) VALUES ($1, $2, $3, 'short_text', 'Q', '', false,"
                    " '[]', '{}', now(), now())", qid, fid, i)
                qids.append(str(qid))
            return str(fid), qids
        finally:
            await conn.close()

    fid, qids = asyncio.run(setup())
    values = ", ".join(f"('{q}'::uuid)" for q in qids)
    script = f"""
WITH r AS (INSERT INTO responses (id, form_id, submitted_at, updated_at, form_version, status)
           VALUES (gen_random_uuid(), '{fid}', now(), now(), 1, 'complete') RETURNING id),
     a AS (INSERT INTO answers (id, response_id, question_id, value, text)
           SELECT gen_random_uuid(), r.id, q.qid, '"an answer"'::jsonb, 'an answer' FROM r, (VALUES {values}) q(qid))
INSERT INTO outbox_events (event_id, event_type, form_id, response_id, payload, created_at, attempts)
SELECT gen_random_uuid(), 'response.submitted', '{fid}', r.id, '{{"type": "response.submitted"}}'::jsonb, now(), 0 FROM r;
""".replace("\n", " ").strip()
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script + "\n")
    try:
        out = subprocess.run(
            ["pgbench", "-n", "-M", "prepared", "-c", "32", "-j", "2", "-T", str(duration), "-f", f.name,
             "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432), "-U", parts.username or "postgres",
             db], capture_output=True, text=True, check=True).stdout
    finally:
        Path(f.name).unlink(missing_ok=True)

        async def cleanup() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute("DELETE FROM outbox_events WHERE form_id = $1", _uuid(fid))
                await conn.execute("DELETE FROM forms WHERE id = $1", _uuid(fid))
            finally:
                await conn.close()

        asyncio.run(cleanup())
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    return {"tps": tps, "clients": 32, "mode": "prepared", "seconds": duration}
