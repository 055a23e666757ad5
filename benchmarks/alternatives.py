"""What users would pick instead, measured in the same run: an MLflow tracking server with a
local artifact root, and a local S3-compatible server (moto) for the registry's S3 store.

MLflow is not a dependency of the project: ``ensure_mlflow()`` installs it into a side
virtual environment (``BENCH_MLFLOW_VENV``, default ``~/.cache/roentgen-bench/mlflow-venv``)
the first time a benchmark is run with ``--mlflow``. Its client calls run in that venv, timed
around the ``log_artifacts`` / ``download_artifacts`` call itself (not the interpreter start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from benchmarks.common import free_port, wait_http

MLFLOW_VENV = Path(
    os.environ.get("BENCH_MLFLOW_VENV", Path.home() / ".cache" / "roentgen-bench" / "mlflow-venv")
)
MLFLOW_REQUIREMENT = "mlflow>=2.10"

_CLIENT = r"""
import json, sys, time
import mlflow
from mlflow import artifacts

url, action, path = sys.argv[1], sys.argv[2], sys.argv[3]
mlflow.set_tracking_uri(url)
if action == "upload":
    mlflow.set_experiment("bench")
    with mlflow.start_run() as run:
        start = time.perf_counter()
        mlflow.log_artifacts(path)
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "run_id": run.info.run_id}))
else:
    start = time.perf_counter()
    artifacts.download_artifacts(run_id=sys.argv[4], artifact_path="", dst_path=path,
                                 tracking_uri=url)
    print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def ensure_mlflow(venv: Path = MLFLOW_VENV) -> Path:
    """The side venv's python, with MLflow installed (created on first use)."""
    python = venv / "bin" / "python"
    if not (venv / "bin" / "mlflow").exists():
        print(f"installing {MLFLOW_REQUIREMENT} into {venv} (once) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", MLFLOW_REQUIREMENT], check=True)
    return python


class MlflowServer:
    """``mlflow server`` on loopback: SQLite tracking store, artifacts proxied to a folder."""

    def __init__(self, work: Path, venv: Path = MLFLOW_VENV) -> None:
        self.python = ensure_mlflow(venv)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        work.mkdir(parents=True, exist_ok=True)
        self._log = (work / "mlflow-server.log").open("wb")
        self.process = subprocess.Popen(
            [
                str(venv / "bin" / "mlflow"), "server", "--host", "127.0.0.1",
                "--port", str(self.port), "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
                "--artifacts-destination", str(work / "artifacts"), "--serve-artifacts",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        wait_http(f"{self.url}/health", timeout=120)

    def _client(self, *args: str) -> dict:
        done = subprocess.run(
            [str(self.python), "-c", _CLIENT, self.url, *args],
            capture_output=True,
            text=True,
            timeout=3600,
            env=dict(os.environ, MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD="false"),
        )
        if done.returncode != 0:
            raise RuntimeError(f"mlflow client {args[0]} failed: {done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def upload(self, folder: Path) -> tuple[float, str]:
        """``log_artifacts(folder)`` in a new run: (seconds, run id)."""
        answer = self._client("upload", str(folder))
        return float(answer["seconds"]), str(answer["run_id"])

    def download(self, run_id: str, target: Path) -> float:
        """``download_artifacts`` of the whole run into ``target``: seconds."""
        return float(self._client("download", str(target), run_id)["seconds"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


class LocalS3:
    """moto's S3 server on loopback, and a fresh bucket as a registry storage URL."""

    def __init__(self) -> None:
        from tests.fixtures.s3 import DUMMY_AWS_ENV, MotoServer, s3_url

        os.environ.update(DUMMY_AWS_ENV)  # the registry's processes inherit it
        self.server = MotoServer()
        self.server.start()
        self.storage_url = s3_url(self.server.endpoint, f"bench-{uuid.uuid4().hex[:8]}")
        from registry.storage.s3 import S3BlobStore

        S3BlobStore.from_url(self.storage_url).ensure_bucket()

    def stop(self) -> None:
        self.server.close()
