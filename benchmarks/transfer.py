"""Download throughput: registry (gunicorn + sendfile) vs a plain static file server.

Serves one large .safetensors file through `registry-server serve` and, in the same run,
through nginx (or, when nginx is not installed, a minimal gunicorn app that hands the file
to `wsgi.file_wrapper`, i.e. the same sendfile path with no registry logic). Downloads each
with curl and the registry with huggingface_hub; prints MB/s, the ratio and the registry's
peak RSS.

    .venv/bin/python -m benchmarks.transfer --size-mb 1024 --runs 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

from benchmarks.common import (
    PeakRSS,
    free_port,
    median_rate,
    registry_bin,
    registry_env,
    start_registry,
    stop,
    wait_http,
    write_safetensors,
)

FALLBACK_APP = textwrap.dedent(
    """
    import os
    ROOT = os.environ["STATIC_ROOT"]
    def app(environ, start_response):
        path = os.path.join(ROOT, environ["PATH_INFO"].lstrip("/"))
        size = os.path.getsize(path)
        start_response("200 OK", [("Content-Length", str(size)),
                                  ("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(path, "rb"), 1024 * 1024)
    """
)


def start_static(root: Path, work: Path, port: int) -> tuple[subprocess.Popen, str]:
    nginx = shutil.which("nginx")
    if nginx:
        conf = work / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""  # workers must read the temp folder
        conf.write_text(
            textwrap.dedent(
                f"""
                daemon off; worker_processes 2; {user} pid {work}/nginx.pid;
                error_log {work}/nginx-error.log;
                events {{ worker_connections 64; }}
                http {{
                  access_log off; sendfile on; tcp_nopush on;
                  client_body_temp_path {work}/nginx-tmp;
                  server {{ listen 127.0.0.1:{port}; root {root}; }}
                }}
                """
            )
        )
        process = subprocess.Popen([nginx, "-c", str(conf)], start_new_session=True)
        label = "nginx (sendfile)"
    else:
        (work / "static_app.py").write_text(FALLBACK_APP)
        process = subprocess.Popen(
            [registry_bin("gunicorn"), "-b", f"127.0.0.1:{port}", "-w", "2", "static_app:app"],
            cwd=work,
            env={"STATIC_ROOT": str(root), "PATH": "/usr/bin:/bin"},
            start_new_session=True,
        )
        label = "gunicorn + wsgi.file_wrapper (nginx not installed)"
    return process, label


def curl(url: str, out: Path) -> None:
    subprocess.run(["curl", "-sSf", "-o", str(out), url], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024

    with tempfile.TemporaryDirectory(prefix="transfer-bench-") as tmp:
        work = Path(tmp)
        instance = work / "instance"
        folder = work / "model"
        from registry.demo import build_demo_folder

        build_demo_folder(folder)
        weights = "unet/large.safetensors"
        write_safetensors(folder / weights, size)
        env = registry_env(instance)
        subprocess.run([registry_bin("registry-server"), "db", "upgrade"], env=env, check=True)
        subprocess.run(
            [
                registry_bin("registry-server"),
                "import-folder",
                "bench/large",
                str(folder),
                "--tier",
                "open",
                "--tag",
                "v1",
            ],
            env=env,
            check=True,
        )
        reg_port, static_port = free_port(), free_port()
        registry = start_registry(instance, reg_port)
        static, label = start_static(folder, work, static_port)
        try:
            wait_http(f"http://127.0.0.1:{static_port}/model_index.json")
            out = work / "download.bin"
            reg_url = f"http://127.0.0.1:{reg_port}/bench/large/resolve/main/{weights}"
            static_url = f"http://127.0.0.1:{static_port}/{weights}"
            with PeakRSS(registry.pid) as rss:
                registry_curl = median_rate(size, args.runs, lambda: curl(reg_url, out))
            static_curl = median_rate(size, args.runs, lambda: curl(static_url, out))

            from huggingface_hub import hf_hub_download

            def hub() -> None:
                cache = work / "hf"
                shutil.rmtree(cache, ignore_errors=True)
                hf_hub_download(
                    "bench/large",
                    weights,
                    endpoint=f"http://127.0.0.1:{reg_port}",
                    cache_dir=cache,
                )

            with PeakRSS(registry.pid) as rss_hub:
                registry_hub = median_rate(size, args.runs, hub)
        finally:
            stop(registry)
            stop(static)

    print(f"file: {args.size_mb} MiB, runs: {args.runs} (medians), static server: {label}")
    print(f"registry  + curl            : {registry_curl:8.1f} MB/s")
    print(f"static    + curl            : {static_curl:8.1f} MB/s")
    print(f"registry  + huggingface_hub : {registry_hub:8.1f} MB/s")
    print(f"ratio registry/static (curl): {registry_curl / static_curl:8.2f}  (target >= 0.9)")
    peak = max(rss.peak, rss_hub.peak)
    print(f"registry peak RSS (all gunicorn processes): {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
