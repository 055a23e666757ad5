"""Pull throughput: ``registry-client pull`` vs ``huggingface_hub.snapshot_download`` vs curl.

Publishes a multi-file model (the tiny demo pipeline plus large safetensors files, about
1 GiB by default) on a temporary registry served by ``registry-server serve`` (gunicorn) on
loopback, then downloads the whole version in the same run, interleaved, ``--runs`` times:

- ``registry-client pull`` (signature + sha256 of every byte, parallel files, into its cache),
- stock ``snapshot_download(repo, endpoint=...)`` into a local folder,
- ``curl -o`` per file, one after the other (the baseline), and ``curl --parallel``.

Each client runs as its own process, so its peak RSS comes from ``wait4``. Prints medians.

    .venv/bin/python -m benchmarks.pull --sizes-mb 512,256,128,64,64 --runs 3
    .venv/bin/python -m benchmarks.pull --sizes-mb 128,64 --runs 3 --mlflow
    .venv/bin/python -m benchmarks.pull --sizes-mb 128,64 --runs 3 --storage s3

``--mlflow`` adds MLflow's ``download_artifacts`` of the same files (an ``mlflow server`` with a
local artifact root, from a side venv: ``benchmarks/alternatives.py``); ``--storage s3`` puts
the blobs in a local S3 server, so every download is a redirect to a presigned URL.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    PeakRSS,
    free_port,
    registry_bin,
    registry_env,
    start_registry,
    stop,
)
from benchmarks.common import write_safetensors as write_weights

REPO = "bench/multi"


def timed(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run ``command``; (seconds, peak RSS in bytes of its process tree, sampled)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with PeakRSS(process.pid, interval=0.02) as rss:
        _, errors = process.communicate()
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed ({process.returncode}): {errors.decode()}")
    return elapsed, rss.peak


def build_model(folder: Path, sizes_mb: list[int]) -> list[str]:
    from registry.demo import build_demo_folder

    build_demo_folder(folder)
    for index, size in enumerate(sizes_mb):
        write_weights(folder / "extras" / f"part-{index}.safetensors", size * 1024 * 1024)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes-mb",
        default="512,256,128,64,64",
        help="sizes of the large files, MiB (the demo files come on top)",
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--client-workers", type=int, default=0, help="registry-client --workers (0: its default)"
    )
    parser.add_argument(
        "--storage", choices=["local", "s3"], default="local", help="s3: blobs in moto S3"
    )
    parser.add_argument(
        "--mlflow", action="store_true", help="also time MLflow download_artifacts (side venv)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes_mb.split(",") if s]

    from benchmarks.alternatives import LocalS3, MlflowServer

    s3 = LocalS3() if args.storage == "s3" else None
    mlflow: MlflowServer | None = None
    with tempfile.TemporaryDirectory(prefix="pull-bench-") as tmp:
        work = Path(tmp)
        instance, folder = work / "instance", work / "model"
        files = build_model(folder, sizes)
        total = sum((folder / f).stat().st_size for f in files)
        env = registry_env(instance, **({"REGISTRY_STORAGE_URL": s3.storage_url} if s3 else {}))
        server = registry_bin("registry-server")
        subprocess.run([server, "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            [server, "import-folder", REPO, str(folder), "--tier", "open", "--tag", "v1"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = free_port()
        extra = {"REGISTRY_STORAGE_URL": s3.storage_url} if s3 else {}
        registry = start_registry(instance, port, workers=args.workers, **extra)
        url = f"http://127.0.0.1:{port}"
        results: dict[str, list[tuple[float, int]]] = {}
        try:
            arms = runners(url, files, work, args.client_workers)
            if args.mlflow:
                mlflow = MlflowServer(work / "mlflow")
                arms["MLflow download_artifacts"] = mlflow_arm(mlflow, folder, work)
            for _ in range(args.runs):
                for label, run in arms.items():
                    results.setdefault(label, []).append(run())
        finally:
            stop(registry)
            if mlflow is not None:
                mlflow.stop()
            if s3 is not None:
                s3.stop()

    print(f"model: {len(files)} files, {total / 2**20:.0f} MiB ({sizes} MiB + the demo files); "
          f"runs: {args.runs} (medians); server: gunicorn, {args.workers} workers, "
          f"{args.storage} store; "
          f"client: {args.client_workers or 'default'} workers")  # fmt: skip
    rates = {}
    for label, samples in results.items():
        rates[label] = statistics.median(total / seconds / 1e6 for seconds, _ in samples)
        peak = max(rss for _, rss in samples)
        print(f"  {label:<38} {rates[label]:8.1f} MB/s   peak RSS {peak / 2**20:6.0f} MiB")
    client = rates["registry-client pull"]
    for label, note in (
        ("curl per file (sequential)", "  (target >= 0.9)"),
        ("curl --parallel", ""),
        ("huggingface_hub snapshot", ""),
        ("MLflow download_artifacts", "  (target >= 2)"),
    ):
        if label not in rates:
            continue
        print(f"  ratio client / {label:<27} {client / rates[label]:8.2f}{note}")


def mlflow_arm(mlflow: object, folder: Path, work: Path) -> object:
    """Log the same folder once as a run's artifacts; each call downloads them all again.
    Timed around ``download_artifacts`` only (its interpreter start is not counted)."""
    _, run_id = mlflow.upload(folder)  # type: ignore[attr-defined]

    def download() -> tuple[float, int]:
        target = work / "mlflow-download"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        return mlflow.download(run_id, target), 0  # type: ignore[attr-defined]

    return download


def runners(url: str, files: list[str], work: Path, workers: int) -> dict[str, object]:
    python = sys.executable

    def client() -> tuple[float, int]:
        config, cache = work / "client-config", work / "client-cache"
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(config, ignore_errors=True)
        env = dict(os.environ, REGISTRY_CONFIG_DIR=str(config), REGISTRY_CACHE_DIR=str(cache))
        command = [python, "-m", "client", "--url", url, "pull", REPO, "-q"]
        return timed([*command, "--workers", str(workers)] if workers else command, env)

    def hub() -> tuple[float, int]:
        target = work / "hf"
        shutil.rmtree(target, ignore_errors=True)
        code = (
            "from huggingface_hub import snapshot_download;"
            f"snapshot_download({REPO!r}, endpoint={url!r}, local_dir={str(target)!r},"
            f"cache_dir={str(work / 'hf-cache')!r})"
        )
        env = dict(os.environ, HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_TELEMETRY="1")
        return timed([python, "-c", code], env)

    def curl_each() -> tuple[float, int]:
        target = work / "curl"
        shutil.rmtree(target, ignore_errors=True)
        start, peak = time.perf_counter(), 0
        for path in files:
            out = target / path
            out.parent.mkdir(parents=True, exist_ok=True)
            _, rss = timed(["curl", "-sSf", "-o", str(out), f"{url}/{REPO}/resolve/main/{path}"],
                           dict(os.environ))  # fmt: skip
            peak = max(peak, rss)
        return time.perf_counter() - start, peak

    def curl_parallel() -> tuple[float, int]:
        target = work / "curl-parallel"
        shutil.rmtree(target, ignore_errors=True)
        command = ["curl", "-sSf", "--no-progress-meter", "--parallel", "--parallel-max", "8"]
        command.append("--create-dirs")
        for path in files:
            command += ["-o", str(target / path), f"{url}/{REPO}/resolve/main/{path}"]
        return timed(command, dict(os.environ))

    return {
        "registry-client pull": client,
        "huggingface_hub snapshot": hub,
        "curl per file (sequential)": curl_each,
        "curl --parallel": curl_parallel,
    }


if __name__ == "__main__":
    main()
