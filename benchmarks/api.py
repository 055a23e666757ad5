"""Cost of authorization: HEAD resolve vs a no-op route on the same server, same run.

Starts `registry-server serve` (gunicorn) over a temporary instance with one published
model, then drives 32 concurrent keep-alive connections with ApacheBench (`apache2-utils`)
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


def run_ab(url: str, seconds: int, connections: int, *, head: bool) -> dict[str, float]:
    """ApacheBench with keep-alive; wrk cannot be used because it hangs on HEAD responses."""
    args = ["ab", "-k", "-q", "-c", str(connections), "-t", str(seconds), "-n", "10000000"]
    if head:
        args.append("-i")
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    return {
        "rps": rps,
        "p50": float(re.search(r"^\s+50%\s+(\d+)", out, re.M).group(1)),
        "p99": float(re.search(r"^\s+99%\s+(\d+)", out, re.M).group(1)),
        "errors": failed + (int(non2xx.group(1)) if non2xx else 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("ab") is None:
        raise SystemExit("ApacheBench is not installed: apt-get install apache2-utils")

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
            resolve = run_ab(
                f"{base}/demo/tiny-phantom/resolve/main/unet/config.json",
                args.seconds,
                args.connections,
                head=True,
            )
            noop = run_ab(f"{base}/api/v1/ping", args.seconds, args.connections, head=False)
        finally:
            stop(server)

    print(f"{args.connections} connections, {args.seconds}s each, {args.workers} gunicorn workers")
    for name, r in [("HEAD resolve", resolve), ("no-op route", noop)]:
        print(
            f"{name:13}: {r['rps']:8.0f} req/s  p50 {r['p50']:4.0f} ms  p99 {r['p99']:4.0f} ms"
            f"  errors {r['errors']:.0f}"
        )
    print(
        f"overhead (no-op req/s / resolve req/s): {noop['rps'] / resolve['rps']:.2f}x (target <= 3)"
    )


if __name__ == "__main__":
    main()
