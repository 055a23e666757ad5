"""``make demo``: the whole story, end to end, on a fresh registry instance.

A registry admin and the institution ``usz`` with a publisher; phantoms, a tiny base, a short
fine-tune and an export; ``registry-client push``; review and publish; a researcher who
registers, applies, uploads a training certificate and signs the DUA, is first denied with
the "what is missing" message, then approved, pulls, generates labelled images and
evaluates them. Every step is checked; the script exits non-zero when one fails.

    .venv/bin/python -m tests.e2e.story [--workdir DIR] [--steps 2500]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks.common import free_port, registry_bin, stop, wait_http

DUA = "physionet-credentialed-1.5.0"
REPO = "usz/cxr-phantom"
PHANTOMS = 2000
# torch in each subprocess takes every core by default; on a busy machine that oversubscribes
# them (VAE steps went from 0.1 s to 2-4 s), so every step runs on at most two threads.
THREADS = str(max(1, min(2, os.cpu_count() or 1)))
PROGRESS_SECONDS = 15.0
PASSWORDS = {
    "admin@registry.example": "admin-pass-0123456789",
    "publisher@usz.example": "publisher-pass-0123456789",
    "researcher@uni.example": "researcher-pass-0123456789",
}


class StoryFailed(RuntimeError):
    pass


class Story:
    def __init__(
        self, work: Path, steps: int, phantoms: int = PHANTOMS, min_laterality: float = 0.75,
        progress_seconds: float = PROGRESS_SECONDS,
    ) -> None:  # fmt: skip
        self.work, self.steps, self.phantoms = work, steps, phantoms
        self.progress_seconds = progress_seconds
        self.min_laterality = min_laterality
        self.instance = work / "instance"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ,
            REGISTRY_INSTANCE_PATH=str(self.instance),
            REGISTRY_PUBLIC_URL=self.url,
            REGISTRY_SESSION_COOKIE_SECURE="false",
            PYTHONUNBUFFERED="1",
            OMP_NUM_THREADS=THREADS,
            MKL_NUM_THREADS=THREADS,
        )
        self.started = time.monotonic()
        self.log: list[tuple[str, str]] = []

    # plumbing ------------------------------------------------------------------------------
    def step(self, title: str, detail: str = "") -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:6.1f}s] ✔ {title}" + (f" — {detail}" if detail else ""), flush=True)
        self.log.append((title, detail))

    def table(self, text: str) -> None:
        """A command's result table, on lines of its own below the step that made it."""
        print("\n".join(f"           {line}" for line in text.strip().splitlines()), flush=True)

    def run(self, *args: str, persona: str | None = None, expect_ok: bool = True,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        env = dict(self.env)
        if persona is not None:
            env["REGISTRY_CONFIG_DIR"] = str(self.work / persona / "config")
            env["REGISTRY_CACHE_DIR"] = str(self.work / persona / "cache")
            env["REGISTRY_URL"] = self.url
        result = subprocess.run(
            [registry_bin(args[0]), *args[1:]], env=env, input=stdin, capture_output=True,
            text=True, timeout=1800,
        )  # fmt: skip
        if expect_ok and result.returncode != 0:
            raise StoryFailed(
                f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-2000:]}"
                f"\n{result.stderr[-3000:]}"
            )
        return result

    def run_with_progress(self, *args: str, run: Path, total: int) -> None:
        """Run a fit, printing a line with its step and loss every few seconds."""
        logs = self.work / "fit.log"
        with logs.open("w") as log:
            process = subprocess.Popen(
                [registry_bin(args[0]), *args[1:]], env=self.env, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            started, shown = time.monotonic(), 0
            while True:
                try:
                    process.wait(timeout=self.progress_seconds)
                    break
                except subprocess.TimeoutExpired:
                    shown = self._show_progress(run, total, started, shown)
                if time.monotonic() - started > 3600:
                    process.kill()
                    raise StoryFailed("the fine-tune ran for more than an hour")
        if process.returncode != 0:
            tail = logs.read_text(errors="replace")[-3000:]
            raise StoryFailed(f"{' '.join(args)} exited {process.returncode}:\n{tail}")

    @staticmethod
    def _show_progress(run: Path, total: int, started: float, shown: int) -> int:
        metrics = run / "metrics.jsonl"
        rows = metrics.read_text().splitlines() if metrics.exists() else []
        last = next((json.loads(r) for r in reversed(rows) if '"loss"' in r), None)
        elapsed = time.monotonic() - started
        if last is None:
            print(f"           … preparing the fine-tune ({elapsed:.0f}s)", flush=True)
            return shown
        step = int(last["step"])
        if step != shown:
            rate = step / elapsed if elapsed else 0.0
            left = (total - step) / rate if rate else 0.0
            print(f"           … step {step}/{total} ({step / total:.0%}), loss "
                  f"{last['loss']:.4f}, about {left:.0f}s left", flush=True)  # fmt: skip
        return step

    def login(self, email: str) -> str:
        """Log in through the API (session + CSRF) and create an API token."""
        session = requests.Session()
        response = session.post(
            f"{self.url}/api/v1/login", json={"email": email, "password": PASSWORDS[email]}
        )
        self.check(response, f"login {email}")
        scope = "admin" if email.startswith("admin") else "write"
        token = session.post(
            f"{self.url}/api/v1/tokens",
            json={"name": "demo", "scope": scope, "expires_in_days": 7},
            headers={"X-CSRFToken": response.json()["csrf_token"]},
        )
        self.check(token, f"token for {email}")
        return token.json()["token"]

    def api(self, method: str, path: str, token: str, **kwargs: Any) -> Any:
        response = requests.request(
            method, f"{self.url}{path}", headers={"Authorization": f"Bearer {token}"}, **kwargs
        )
        self.check(response, f"{method} {path}")
        return response.json() if response.content else None

    @staticmethod
    def check(response: requests.Response, what: str) -> None:
        if not response.ok:
            raise StoryFailed(f"{what}: HTTP {response.status_code} {response.text[:1000]}")

    def register(self, email: str, name: str) -> None:
        response = requests.post(
            f"{self.url}/api/v1/register",
            json={"email": email, "password": PASSWORDS[email], "display_name": name,
                  "accept_terms": True},
        )  # fmt: skip
        self.check(response, f"register {email}")
        self.verify_email(email)

    def verify_email(self, address: str) -> None:
        """Open the link the registry mailed (written to <instance>/outbox/ without SMTP)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for path in sorted((self.instance / "outbox").glob("*.eml")):
                mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                found = re.search(r"/account/verify/(\S+)", mail.get_content())  # type: ignore[attr-defined]
                if mail["To"] == address and found:
                    verified = requests.post(
                        f"{self.url}/api/v1/verify-email", json={"token": found.group(1)}
                    )
                    self.check(verified, f"verify {address}")
                    return
            time.sleep(0.5)
        raise StoryFailed(f"no verification mail for {address} in {self.instance / 'outbox'}")

    # the story -----------------------------------------------------------------------------
    def registry_up(self) -> subprocess.Popen[bytes]:
        self.run("registry-server", "db", "upgrade")
        server = subprocess.Popen(
            [registry_bin("registry-server"), "serve", "--port", str(self.port)],
            env=self.env, stdout=(self.work / "server.log").open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_http(f"{self.url}/api/v1/ping", timeout=120)
        self.step("registry serving", self.url)
        return server

    def people(self) -> tuple[str, str]:
        admin = "admin@registry.example"
        self.run("registry-server", "create-admin", admin, stdin=PASSWORDS[admin] + "\n")
        admin_token = self.login(admin)
        self.api("POST", "/api/v1/institutions", admin_token,
                 json={"slug": "usz", "name": "University Hospital Zurich"})  # fmt: skip
        self.register("publisher@usz.example", "Pat Publisher")
        self.api("PUT", "/api/v1/institutions/usz/members/publisher@usz.example", admin_token,
                 json={"role": "publisher"})  # fmt: skip
        self.step("admin, institution usz and its publisher (address verified by mail) created")
        return admin_token, self.login("publisher@usz.example")

    def train(self) -> Path:
        data, base, run, export = (self.work / n for n in ("phantoms", "base", "run", "export"))
        self.run("registry-train", "phantoms", "--out", str(data), "-n", str(self.phantoms),
                 "--size", "32", "--seed", "1")  # fmt: skip
        self.step(f"{self.phantoms} phantoms with reports", str(data))
        self.run("registry-train", "init-base", "--out", str(base), "--seed", "0")
        self.step("tiny base pipeline built offline (VAE and text encoder pre-trained)", str(base))
        # The recipe measured in trainer/README.md: enough for the model to follow the prompt.
        self.run_with_progress("registry-train", "fit", "--base", str(base), "--data",
                 str(data / "manifest.jsonl"), "--out", str(run), "--resolution", "32",
                 "--max-train-steps", str(self.steps), "--train-batch-size", "16",
                 "--learning-rate", "1e-3", "--lr-scheduler", "constant_with_warmup",
                 "--lr-warmup-steps", "50", "--text-dropout", "0.1", "--use-ema",
                 "--ema-decay", "0.995", "--snr-gamma", "5", "--validation-steps", "0",
                 "--checkpointing-steps", str(self.steps), "--seed", "0",
                 "--no-progress-bar", run=run, total=self.steps)  # fmt: skip
        self.step(f"fine-tuned {self.steps} steps", str(run))
        self.evaluate_at_institution(run, data / "manifest.jsonl")
        self.run("registry-train", "export", str(run), "--out", str(export),
                 "--tier", "credentialed", "--dua", DUA, "--sample-steps", "10")  # fmt: skip
        self.step("exported with a model card", str(export))
        return export

    def evaluate_at_institution(self, run: Path, manifest: Path) -> None:
        """Utility and privacy on the phantoms, before export, so the card carries them."""
        synthetic, generated = min(96, self.phantoms), min(48, self.phantoms // 2)
        self.run("registry-train", "evaluate", str(run), "--utility", "--privacy", "--data",
                 str(manifest), "--real-count", "16", "--synthetic-count", str(synthetic),
                 "--privacy-count", str(generated), "--resamples", "500",
                 "--steps", "15")  # fmt: skip
        report = json.loads((run / "evaluation.json").read_text())
        gain = report["utility"]["gain"]["real+synthetic - real"]
        arms = report["utility"]["arms"]
        pixel = report["privacy"]["spaces"]["pixel"]
        copies = report["privacy"]["near_copies"]["count"]
        self.step(
            "utility and privacy evaluated at the institution (numbers only go in the card)",
            f"macro AUROC real {arms['real']['value']:.3f} -> real+synthetic "
            f"{arms['real+synthetic']['value']:.3f}, gain {gain['value']:+.3f} "
            f"[{gain['ci95'][0]:+.3f}, {gain['ci95'][1]:+.3f}]; nearest training image "
            f"median {pixel['generated']['median']:.4f} vs held-out "
            f"{pixel['baseline']['median']:.4f}; near-copies {copies}",
        )

    def publish(self, export: Path, admin_token: str, publisher_token: str) -> None:
        self.run("registry-client", "login", "--token", publisher_token, persona="publisher")
        pushed = self.run("registry-client", "push", str(export), REPO, "--tag", "v1", "--quiet",
                          persona="publisher")  # fmt: skip
        if "in-review" not in pushed.stdout:
            raise StoryFailed(f"push should await review:\n{pushed.stdout}")
        self.step("registry-client push: awaiting review", pushed.stdout.splitlines()[0])
        reviews = self.api("GET", "/api/v1/reviews", admin_token)["reviews"]
        version = next(v for v in reviews if v["repo"] == REPO)
        published = self.api(
            "POST", f"/api/v1/models/{REPO}/versions/{version['id']}/publish", admin_token
        )
        self.step("admin reviewed and published", f"{REPO}@{published['commit']}")

    def researcher_applies(self) -> str:
        email = "researcher@uni.example"
        self.register(email, "Rita Researcher")
        token = self.login(email)
        self.run("registry-client", "login", "--token", token, persona="researcher")
        self.api("POST", "/api/v1/credentials", token, json={
            "full_name": "Rita Researcher", "affiliation": "University of Somewhere",
            "reference_name": "Prof. Ref", "reference_email": "ref@uni.example",
            "research_summary": "Synthetic chest X-rays to study effusion laterality.",
        })  # fmt: skip
        certificate = b"%PDF-1.4\n% CITI Data or Specimens Only Research completion report\n"
        self.api("POST", "/api/v1/trainings", token,
                 data={"kind": "citi-dsor", "completed_on": time.strftime("%Y-%m-%d")},
                 files={"certificate": ("citi.pdf", certificate, "application/pdf")})  # fmt: skip
        self.api("POST", f"/api/v1/duas/{DUA}/signatures", token,
                 json={"full_name": "Rita Researcher"})  # fmt: skip
        self.step(
            "researcher registered, verified the address, applied, uploaded a CITI certificate, "
            "signed the DUA"
        )
        return token

    def denied_then_approved(self, admin_token: str) -> Path:
        denied = self.run("registry-client", "pull", REPO, "--quiet", persona="researcher",
                          expect_ok=False)  # fmt: skip
        message = (denied.stderr + denied.stdout).strip()
        if denied.returncode == 0 or "credential" not in message.lower():
            raise StoryFailed(f"the pull should be denied with what is missing:\n{message}")
        self.step("researcher denied before approval", message.splitlines()[-1][:200])
        for queue, path in (("credentials", "credentials"), ("trainings", "trainings")):
            for item in self.api("GET", f"/api/v1/{path}/review?status=pending", admin_token):
                self.api("POST", f"/api/v1/{path}/{item['id']}/decision", admin_token,
                         json={"decision": "accept"})  # fmt: skip
            self.step(f"admin accepted the {queue}")
        pulled = self.run("registry-client", "pull", REPO, "--quiet", persona="researcher")
        path = Path(pulled.stdout.strip().splitlines()[-1])
        self.step("researcher pulled and verified the weights", str(path))
        return path

    def generate_and_evaluate(self, model: Path) -> list[Path]:
        out = self.work / "synthetic"
        self.run("registry-client", "generate", REPO,
                 "small left pleural effusion", "large right pleural effusion",
                 "-n", "2", "--seed", "0", "--steps", "15", "--out", str(out), "--quiet",
                 persona="researcher")  # fmt: skip
        images = sorted(
            p for p in out.glob("*.png") if "grid" not in p.name and "sheet" not in p.name
        )
        if not images:
            raise StoryFailed(f"no images in {out}")
        from PIL import Image

        with Image.open(images[0]) as image:
            text = dict(image.text)  # type: ignore[attr-defined]
        if text.get("synthetic") != "true" or REPO not in text.get("model", ""):
            raise StoryFailed(f"image metadata lacks provenance: {text}")
        self.step(f"{len(images)} labelled synthetic images", str(out))
        report = self.work / "evaluation"
        evaluation = self.run("registry-train", "evaluate", str(model), "--per-finding", "6",
                              "--steps", "15", "--out", str(report))  # fmt: skip
        laterality = json.loads((report / "evaluation.json").read_text())["laterality"]
        if laterality["accuracy"] < self.min_laterality:
            raise StoryFailed(
                f"the model does not follow the prompt's side: laterality "
                f"{laterality['correct']}/{laterality['total']} (need {self.min_laterality:.0%})\n"
                f"{evaluation.stdout}"
            )
        self.step("evaluated on held-out phantom prompts", str(report / "evaluation.json"))
        self.table(evaluation.stdout)
        return images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temp dir)")
    parser.add_argument("--steps", type=int, default=2500, help="fine-tuning steps")
    parser.add_argument("--phantoms", type=int, default=PHANTOMS, help="training images")
    parser.add_argument(
        "--min-laterality",
        type=float,
        default=0.75,
        help="fail below this laterality accuracy (the default recipe reaches about 0.99)",
    )
    parser.add_argument("--progress-seconds", type=float, default=PROGRESS_SECONDS,
                        help="how often the fine-tune's step and loss are printed")  # fmt: skip
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="registry-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    story = Story(
        work.resolve(), args.steps, args.phantoms, args.min_laterality, args.progress_seconds
    )
    server = None
    try:
        server = story.registry_up()
        admin_token, publisher_token = story.people()
        export = story.train()
        story.publish(export, admin_token, publisher_token)
        story.researcher_applies()
        model = story.denied_then_approved(admin_token)
        images = story.generate_and_evaluate(model)
    except StoryFailed as error:
        print(f"\n✘ demo failed: {error}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            stop(server)
    print(f"\nDemo finished in {time.monotonic() - story.started:.0f}s. Everything is in {work}")
    print("Synthetic images:")
    for image in images:
        print(f"  {image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
