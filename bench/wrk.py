"""Run wrk and read its figures (wrk from Debian: `apt-get install wrk`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}

# A Lua script that reports exact percentiles and counts as one JSON line at the end.
_REPORT = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "non2xx": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


@dataclass
class WrkResult:
    name: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # socket errors + non-2xx/3xx answers
    non2xx: int

    def row(self) -> str:
        return (f"| {self.name} | {self.rps:,.0f} | {self.p50_ms:.1f} | {self.p99_ms:.1f} | "
                f"{self.requests:,} | {self.errors} |")


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: run `apt-get install -y wrk` (Debian package).")
    return path


# Seconds of the same load run first and not counted, as in any steady-state measurement: each
# web process's first requests open its pooled connections and prepare its statements.
WARMUP = 3


def run(name: str, url: str, *, lua: str = "", threads: int = 2, connections: int = 32,
        duration: int = 20, timeout: int = 10, warmup: int = WARMUP) -> WrkResult:
    if warmup:
        run(name, url, lua=lua, threads=threads, connections=connections, duration=warmup, timeout=timeout,
            warmup=0)
    wrk = require_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.lua"
        script.write_text(lua + "\n" + _REPORT)
        out = subprocess.run(
            [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", f"--timeout={timeout}s",
             "-s", str(script), url],
            capture_output=True, text=True, check=True,
        ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRKJSON "))
    data = json.loads(line[len("WRKJSON "):])
    seconds = data["duration_us"] / 1e6
    errors = data["connect"] + data["read"] + data["write"] + data["timeout"] + data["non2xx"]
    return WrkResult(
        name=name, requests=data["requests"], seconds=seconds, rps=data["requests"] / seconds,
        p50_ms=data["p50_us"] / 1e3, p90_ms=data["p90_us"] / 1e3, p99_ms=data["p99_us"] / 1e3,
        max_ms=data["max_us"] / 1e3, errors=errors, non2xx=data["non2xx"],
    )


def post_lua(body: str, content_type: str = "application/json", extra_headers: dict[str, str] | None = None) -> str:
    headers = {"Content-Type": content_type, **(extra_headers or {})}
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    return "\n".join(lines)


def get_lua(headers: dict[str, str]) -> str:
    return "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())


def as_dict(result: WrkResult) -> dict:
    return asdict(result)

