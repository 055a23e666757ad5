"""Cost of authorization: HEAD resolve vs a no-op route on the same server, same run.

Starts `registry-server serve` (gunicorn) over a temporary instance with one published
model, then drives 32 concurrent keep-alive connections with wrk (Debian package `wrk`)
against `HEAD /{repo}/resolve/main/{file}` (policy decision + database lookups + headers)
and against `GET /api/v1/ping` (no database). Prints requests/s, p50/p99 latency and the
overhead ratio. Target: at most 3x the no-op route.

    .venv/bin/python -m benchmarks.api --seconds 10 --connections 32 [--token TOKEN --repo NS/NAME]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchmarks.common import free_port, registry_bin, registry_env, start_registry, stop

HEAD_LUA = 'wrk.method = "HEAD"\n'


def run_wrk(url: str, seconds: int, connections: int, work: Path, *, head: bool, token: str):
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if head:
        script = work / "head.lua"
        script.write_text(HEAD_LUA)
        args += ["-s", str(script)]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": _latency_ms(out, "50%"),
        "p99": _latency_ms(out, "99%"),
        "errors": int(errors.group(1)) if errors else 0,
    }


def _latency_ms(out: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    with tempfile.TemporaryDirectory(prefix="api-bench-") as tmp:
        work = Path(tmp)
        instance = work / "instance"
        env = registry_env(instance)
        subprocess.run([registry_bin("registry-server"), "db", "upgrade"], env=env, check=True)
        subprocess.run([registry_bin("registry-server"), "seed-demo"], env=env, check=True)
        port = free_port()
        server = start_registry(instance, port, workers=args.workers)
        base = f"http://127.0.0.1:{port}"
        try:
            resolve = run_wrk(
                f"{base}/demo/tiny-phantom/resolve/main/unet/config.json",
                args.seconds,
                args.connections,
                work,
                head=True,
                token="",
            )
            noop = run_wrk(
                f"{base}/api/v1/ping", args.seconds, args.connections, work, head=False, token=""
            )
        finally:
            stop(server)

    print(f"{args.connections} connections, {args.seconds}s each, {args.workers} gunicorn workers")
    for name, r in [("HEAD resolve", resolve), ("no-op route", noop)]:
        print(
            f"{name:13}: {r['rps']:8.0f} req/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms"
            f"  non-2xx {r['errors']}"
        )
    print(
        f"overhead (no-op req/s / resolve req/s): {noop['rps'] / resolve['rps']:.2f}x (target <= 3)"
    )


if __name__ == "__main__":
    main()
