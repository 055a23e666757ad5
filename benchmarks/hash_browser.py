"""SHA-256 in the browser, as the upload form computes it: hash-wasm in a Web Worker (what
the form uses now) against, in the same run, the hand-written JavaScript SHA-256 the form
used before (``benchmarks/legacy/sha256_handwritten.js``, on the main thread), the
browser's native SubtleCrypto (one shot: it cannot stream) and Python's hashlib.

Serves a throw-away registry (``registry-server serve``) on loopback and drives headless
Chromium. Prints MB/s per method (median of ``--runs``).

    .venv/bin/python -m benchmarks.hash_browser --size-mb 200 --runs 3
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import free_port, registry_bin, registry_env, start_registry, stop

LEGACY = (Path(__file__).parent / "legacy" / "sha256_handwritten.js").read_text()
CHROMIUM = os.environ.get("REGISTRY_TEST_CHROMIUM", "/usr/bin/chromium")

MAKE_BLOB = """(megabytes) => {
  const block = new Uint8Array(1 << 20);
  for (let at = 0; at < block.length; at += 65536) {
    crypto.getRandomValues(block.subarray(at, at + 65536));
  }
  window.__blob = new Blob(Array.from({ length: megabytes }, () => block));
  return Array.from(block.subarray(0, 16));
}"""
WORKER = """async () => {
  const { HashPool } = await import("/assets/js/hashing.js");
  const pool = new HashPool("/assets/js/hash-worker.js", 1);
  const start = performance.now();
  const hex = await pool.hash(window.__blob);
  return [performance.now() - start, hex];
}"""
LEGACY_RUN = (
    "async () => {\n"
    + LEGACY.replace("export class", "class").replace("export async function", "async function")
    + """
  const hash = new Sha256();
  const start = performance.now();
  const slice = 8 << 20;
  for (let at = 0; at < window.__blob.size; at += slice) {
    hash.update(new Uint8Array(await window.__blob.slice(at, at + slice).arrayBuffer()));
  }
  return [performance.now() - start, hash.hex()];
}"""
)
NATIVE = """async () => {
  const start = performance.now();
  const digest = await crypto.subtle.digest("SHA-256", await window.__blob.arrayBuffer());
  const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  return [performance.now() - start, hex];
}"""
EXPECTED = """async () => {
  const digest = await crypto.subtle.digest("SHA-256", await window.__blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = registry_env(Path(tmp))
        command = [registry_bin("registry-server"), "db", "upgrade"]
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        server = start_registry(Path(tmp), port, workers=1)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--headless", "--no-sandbox"]
                )
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/")
                page.evaluate(MAKE_BLOB, args.size_mb)
                expected = page.evaluate(EXPECTED)
                results: dict[str, list[float]] = {"hash-wasm worker": [], "hand-written JS": [],
                                                   "SubtleCrypto (one shot)": []}  # fmt: skip
                for _ in range(args.runs):
                    for name, script in (
                        ("hash-wasm worker", WORKER),
                        ("hand-written JS", LEGACY_RUN),
                        ("SubtleCrypto (one shot)", NATIVE),
                    ):
                        millis, hex_digest = page.evaluate(script)
                        if hex_digest != expected:
                            raise SystemExit(f"{name} computed a wrong digest")
                        results[name].append(args.size_mb / (millis / 1000))
                browser.close()
        finally:
            stop(server)
    data = os.urandom(1 << 20) * args.size_mb
    rates = []
    for _ in range(args.runs):
        start = time.perf_counter()
        hashlib.sha256(data).hexdigest()
        rates.append(args.size_mb / (time.perf_counter() - start))
    results["Python hashlib"] = rates
    print(f"SHA-256 of {args.size_mb} MiB, median of {args.runs} runs:")
    for name, values in results.items():
        print(f"  {name:26s} {statistics.median(values):8.1f} MiB/s")


if __name__ == "__main__":
    main()
