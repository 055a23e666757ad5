"""Cost of authorization and of the audited download vs a no-op route, same run.

Starts `registry-server serve` (gunicorn) over a temporary instance with one published
model, then drives 32 concurrent keep-alive connections with ApacheBench (`apache2-utils`)
against `GET /{repo}/resolve/main/{small weights file}` with a token (policy decision +
lookups + an audit event per download + the file), `HEAD /{repo}/resolve/main/{file}`
(policy decision + database lookups + headers) and `GET /api/v1/ping` (no database).
Prints requests/s, p50/p99 latency and the ratios. Targets: at most 3x the no-op route, and
with ``--processes 1 2`` the audited download on two server processes at least 1.6x one
(the connections are split evenly between the processes, one ApacheBench each).

One gunicorn worker by default: on a 2-core machine, ApacheBench needs a core of its own, and
with two workers the 32 keep-alive connections land unevenly between them (all on one worker
in some runs, split in others), which swings every figure by 2-3x from round to round. One
worker measures what the request costs; ``--workers 2`` shows the other picture. Each round
prints its own figures; the summary gives medians and the median of per-round ratios.

    .venv/bin/python -m benchmarks.api --seconds 10 --connections 32 --rounds 3 \
        [--workers 1] [--processes 1 2] \
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/EMPTY_DB]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
from pathlib import Path

from benchmarks.common import (
    free_port,
    registry_bin,
    registry_env,
    start_registry,
    stop,
    write_safetensors,
)

SMALL_WEIGHTS = "small/weights.safetensors"  # an audited download of 4 KiB


def run_ab(
    url: str, seconds: int, connections: int, *, head: bool, token: str = ""
) -> dict[str, float]:
    """ApacheBench with keep-alive; wrk cannot be used because it hangs on HEAD responses."""
    args = ["ab", "-k", "-q", "-c", str(connections), "-t", str(seconds), "-n", "10000000"]
    if head:
        args.append("-i")
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
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


def run_ab_on(
    urls: list[str], seconds: int, connections: int, *, head: bool, token: str = ""
) -> dict[str, float]:
    """ApacheBench on each server at once, ``connections`` split evenly; summed req/s."""
    results: list[dict[str, float]] = []
    share = max(1, connections // len(urls))

    def one(url: str) -> None:
        results.append(run_ab(url, seconds, share, head=head, token=token))

    threads = [threading.Thread(target=one, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(results) != len(urls):
        raise RuntimeError("an ApacheBench run failed")
    return {
        "rps": sum(r["rps"] for r in results),
        "p50": max(r["p50"] for r in results),
        "p99": max(r["p99"] for r in results),
        "errors": sum(r["errors"] for r in results),
    }


def pending_events(instance: Path, database: dict[str, str]) -> tuple[int, int]:
    """(sealed, pending) audit events right now."""
    from sqlalchemy import func, select

    from registry.config import Settings
    from registry.context import build_registry
    from registry.models import AuditEvent

    registry = build_registry(
        Settings.from_env({"REGISTRY_INSTANCE_PATH": str(instance), **database})
    )
    with registry.sessions() as db:
        total = db.scalar(select(func.count()).select_from(AuditEvent)) or 0
        pending = db.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None))
        )
    registry.engine.dispose()
    return total - (pending or 0), pending or 0


def median_run(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def make_gated_model(instance: Path, database: dict[str, str]) -> str:
    """A credentialed-tier model and a fully credentialed researcher; returns their token."""
    from registry.config import Settings
    from registry.context import build_registry
    from registry.demo import build_demo_folder
    from tests.fixtures.principals import People
    from tests.fixtures.repos import publish_folder

    registry = build_registry(
        Settings.from_env({"REGISTRY_INSTANCE_PATH": str(instance), **database})
    )
    folder = build_demo_folder(instance / "gated-model")
    write_safetensors(folder / SMALL_WEIGHTS, 4096)
    publish_folder(registry, "bench/gated", folder, tier="credentialed")
    people = People(registry)
    return people.token(people.researcher("researcher@bench.example"), "read")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[1],
        help="server processes to compare, e.g. 1 2 (each with --workers workers)",
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="an empty database to use instead of the instance's SQLite file "
        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/apibench)",
    )
    args = parser.parse_args()
    database = {"REGISTRY_DATABASE_URL": args.database_url} if args.database_url else {}
    if shutil.which("ab") is None:
        raise SystemExit("ApacheBench is not installed: apt-get install apache2-utils")

    with tempfile.TemporaryDirectory(prefix="api-bench-") as tmp:
        work = Path(tmp)
        instance = work / "instance"
        env = registry_env(instance, **database)
        subprocess.run([registry_bin("registry-server"), "db", "upgrade"], env=env, check=True)
        subprocess.run([registry_bin("registry-server"), "seed-demo"], env=env, check=True)
        token = make_gated_model(instance, database)
        by_processes = {
            count: bench_processes(instance, database, token, count, args)
            for count in args.processes
        }
        sealed, pending = pending_events(instance, database)

    workers = f"{args.workers} gunicorn worker(s) per process"
    print(
        f"{args.connections} connections, {args.rounds} interleaved round(s) of {args.seconds}s, "
        f"{workers}, {args.database_url or 'SQLite'} (medians)"
    )
    for count, runs in by_processes.items():
        summarize(count, runs)
    if 1 in by_processes and 2 in by_processes:
        one = median_run(by_processes[1]["download"])["rps"]
        two = median_run(by_processes[2]["download"])["rps"]
        print(f"audited download, 2 processes vs 1 (req/s ratio): {two / one:.2f}x (target >= 1.6)")
    print(f"audit events at the end: {sealed} sealed, {pending} pending")


def bench_processes(
    instance: Path, database: dict[str, str], token: str, count: int, args: argparse.Namespace
) -> dict[str, list[dict[str, float]]]:
    """Interleaved rounds against ``count`` server processes sharing one database."""
    ports = [free_port() for _ in range(count)]
    servers = [start_registry(instance, port, workers=args.workers, **database) for port in ports]
    bases = [f"http://127.0.0.1:{port}" for port in ports]

    def urls(path: str) -> list[str]:
        return [f"{base}{path}" for base in bases]

    targets = {
        "download": (urls(f"/bench/gated/resolve/main/{SMALL_WEIGHTS}"), False, token),
        "authorized": (urls("/bench/gated/resolve/main/unet/config.json"), True, token),
        "anonymous": (urls("/demo/tiny-phantom/resolve/main/unet/config.json"), True, ""),
        "noop": (urls("/api/v1/ping"), False, ""),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    try:
        # Interleaved rounds, medians: a shared machine's load drifts between runs.
        for round_no in range(1, args.rounds + 1):
            for name, (where, head, bearer) in targets.items():
                result = run_ab_on(where, args.seconds, args.connections, head=head, token=bearer)
                runs[name].append(result)
                print(
                    f"{count} process(es) round {round_no} {name:10}: {result['rps']:8.0f} req/s  "
                    f"p50 {result['p50']:4.0f} ms  p99 {result['p99']:4.0f} ms  "
                    f"errors {result['errors']:.0f}  (load average {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
    finally:
        for server in servers:
            stop(server)
    return runs


def summarize(count: int, runs: dict[str, list[dict[str, float]]]) -> None:
    download, resolve, anonymous, noop = (
        median_run(runs[n]) for n in ("download", "authorized", "anonymous", "noop")
    )
    rows = [
        ("GET resolve 4 KiB weights, token (audited)", download),
        ("HEAD resolve, token, credentialed tier", resolve),
        ("HEAD resolve, anonymous, open tier", anonymous),
        ("no-op route", noop),
    ]
    print(f"-- {count} server process(es)")
    for name, r in rows:
        print(
            f"{name:43}: {r['rps']:8.0f} req/s  p50 {r['p50']:4.0f} ms  p99 {r['p99']:4.0f} ms"
            f"  errors {r['errors']:.0f}"
        )
    for label, key, measured in (
        ("audited download", "download", download),
        ("authorized HEAD resolve", "authorized", resolve),
    ):
        ratios = [n["rps"] / a["rps"] for n, a in zip(runs["noop"], runs[key], strict=True)]
        print(
            f"overhead, {label} vs no-op (req/s ratio): medians "
            f"{noop['rps'] / measured['rps']:.2f}x, median of per-round ratios "
            f"{statistics.median(ratios):.2f}x (target <= 3)"
        )


if __name__ == "__main__":
    main()
