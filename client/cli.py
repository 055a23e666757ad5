"""``registry-client``: log in, find, pull, verify, push, request access, generate."""

from __future__ import annotations

import errno
import getpass
import json
import sys
from pathlib import Path
from typing import Any

import click

import client.merkle as merkle
from client.download import DEFAULT_WORKERS
from client.errors import ConfigError, IntegrityError, RegistryClientError, error_from_os_error
from client.generate import DEFAULT_GUIDANCE

EXIT_CODES = """\b
Exit codes:
  0  success
  1  other failure (refused request, conflict, ...)
  2  bad flags, settings or local files
  3  not logged in, or the token is invalid or expired
  4  access denied (the message says what is missing and where to fix it)
  5  no such model, revision or file
  6  the version was withdrawn by the registry
  7  integrity: a sha256, a signature, the manifest order (rollback) or the audit log failed
  8  the registry's signing key changed (accept with trust-key / --accept-new-key)
  9  push: the folder has problems (all are listed)
  10 the registry is unreachable or failing (5xx)
  11 a local file error: disk full, permission denied, read-only file system
  130 interrupted

\b
Settings: --url/--token, else REGISTRY_URL/REGISTRY_TOKEN, else the config folder
($REGISTRY_CONFIG_DIR or $XDG_CONFIG_HOME/roentgen-registry). Cache: $REGISTRY_CACHE_DIR or
$XDG_CACHE_HOME/roentgen-registry."""


class ClientGroup(click.Group):
    """Turns client errors into their message and documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RegistryClientError as error:
            _fail(ctx, error)
        except OSError as error:  # disk full, permission denied, …: one line, exit code 11
            if error.errno == errno.EPIPE:
                raise  # stdout closed (``| head``): click handles it
            _fail(ctx, error_from_os_error(error))
        except KeyboardInterrupt:
            click.echo("interrupted; partial downloads are kept and resume next time", err=True)
            ctx.exit(130)


def _fail(ctx: click.Context, error: RegistryClientError) -> None:
    for line in error.lines():
        click.echo(f"error: {line}" if line is error.lines()[0] else line, err=True)
    ctx.exit(error.exit_code)


def make_client(ctx: click.Context) -> Any:
    from client.api import RegistryClient

    options = ctx.find_root().params
    return RegistryClient(url=options.get("url"), token=options.get("token"), notify=_notice)


def _notice(message: str) -> None:
    click.echo(message, err=True)


@click.group(cls=ClientGroup, epilog=EXIT_CODES)
@click.option("--url", envvar="REGISTRY_URL", help="Registry URL (default: the logged-in one)")
@click.option("--token", envvar="REGISTRY_TOKEN", help="API token (default: the stored one)")
def main(url: str | None, token: str | None) -> None:
    """Pull, verify and sample chest X-ray generative models from a RoentGen registry."""


@main.command()
@click.option("--email", help="Create a token by logging in with email and password")
@click.option("--password", help="Password (prompted when omitted)")
@click.option("--token", "login_token", help="An existing API token (prompted if neither)")
@click.option("--scope", type=click.Choice(["read", "write", "admin"]), default="write",
              show_default=True, help="Scope of a token created from a password")  # fmt: skip
@click.option("--accept-new-key", is_flag=True, help="Accept a changed registry signing key")
@click.pass_context
def login(
    ctx: click.Context,
    email: str | None,
    password: str | None,
    login_token: str | None,
    scope: str,
    accept_new_key: bool,
) -> None:
    """Log in (token, or email + password) and pin the registry's signing key."""
    client = make_client(ctx)
    token = login_token or (None if email else ctx.find_root().params.get("token"))
    if token is None and email is None:
        token = getpass.getpass("API token: ").strip()
    if email and not password:
        password = getpass.getpass("Password: ")
    who = client.login(
        token=token, email=email, password=password, scope=scope, accept_new_key=accept_new_key
    )
    click.echo(f"Logged in to {client.url} as {who.get('email') or who.get('name')}")
    for key_id, public_key in client.trust.registry_keys().items():
        from client.verify import fingerprint

        click.echo(f"  registry key {key_id[:16]}… {fingerprint(public_key)}")


@main.command()
@click.pass_context
def logout(ctx: click.Context) -> None:
    """Forget the stored token for this registry."""
    client = make_client(ctx)
    click.echo("Logged out" if client.logout() else "No stored token for this registry")


@main.command()
@click.pass_context
def whoami(ctx: click.Context) -> None:
    """Show who the token belongs to."""
    client = make_client(ctx)
    who = client.whoami()
    access = (who.get("auth") or {}).get("accessToken") or {}
    orgs = ", ".join(f"{o['name']} ({o.get('roleInOrg')})" for o in who.get("orgs") or [])
    click.echo(f"{who.get('email') or who.get('name')} on {client.url}")
    if access:
        click.echo(f"  token {access.get('displayName')} scope={access.get('role')}")
    if orgs:
        click.echo(f"  institutions: {orgs}")


@main.command()
@click.argument("query", required=False)
@click.option("--author", help="Only this namespace (institution)")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
@click.pass_context
def search(
    ctx: click.Context, query: str | None, author: str | None, limit: int, as_json: bool
) -> None:
    """Find models by name or namespace."""
    models = make_client(ctx).search(query, author=author, limit=limit)
    if as_json:
        click.echo(json.dumps(models, indent=2))
        return
    for model in models:
        click.echo(f"{model['id']:<40} tier={model.get('accessTier')}  {model.get('sha') or ''}")
    if not models:
        click.echo("no models found", err=True)


@main.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
@click.pass_context
def info(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Card summary, versions and your access status for NS/NAME[@REV]."""
    from client.api import parse_ref

    repo, revision = parse_ref(ref)
    details = make_client(ctx).info(repo, revision)
    if as_json:
        click.echo(json.dumps(details, indent=2, default=str))
        return
    card = details["card"]
    click.echo(f"{repo}@{details['commit']}  tags: {', '.join(details['tags']) or '-'}")
    dua = details["dua"] or "-"
    click.echo(f"  tier: {details['tier']}  DUA: {dua}  state: {details['state']}")
    if details["base_model"]:
        click.echo(f"  base model: {details['base_model']}")
    for field in ("license", "intended_use", "out_of_scope_use", "limitations", "training_data"):
        if card.get(field):
            click.echo(f"  {field}: {card[field]}")
    size = sum(s or 0 for _, s in details["files"])
    click.echo(f"  files: {len(details['files'])} ({size / 1e6:.1f} MB)")
    for version in details["versions"]:
        tags = ",".join(version.get("tags") or []) or "-"
        when = str(version.get("published_at") or "")[:10]
        cached = " (cached)" if version.get("commit") in details["cached"] else ""
        name = version.get("commit") or f"#{version.get('id')} (unpublished)"
        line = f"  version {name} {version.get('state')} tags={tags} {when}"
        click.echo(line + cached)
        if version.get("withdrawn_reason"):
            click.echo(f"    withdrawn: {version['withdrawn_reason']}")
    if details["withdrawn"]:
        click.echo(f"  WITHDRAWN: {details['withdrawn']}")
    access = details["access"]
    verdict = "granted" if access["allowed"] else "not granted"
    click.echo(f"  access: {verdict} - {access['detail']}")
    for request in details["access_requests"]:
        until = f" until {request['expires_at'][:10]}" if request.get("expires_at") else ""
        click.echo(f"  access request {request.get('id')}: {request.get('status')}{until}")


@main.command()
@click.argument("ref")
@click.option("--local-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also place the files in this folder")  # fmt: skip
@click.option("--copy", is_flag=True, help="With --local-dir: copy instead of hard-linking")
@click.option("--accept-new-key", is_flag=True, help="Accept a changed registry signing key")
@click.option("--workers", default=DEFAULT_WORKERS, show_default=True,
              help="Files downloaded in parallel")  # fmt: skip
@click.option("-q", "--quiet", is_flag=True, help="No progress bars; print only the path")
@click.pass_context
def pull(
    ctx: click.Context,
    ref: str,
    local_dir: Path | None,
    copy: bool,
    accept_new_key: bool,
    workers: int,
    quiet: bool,
) -> None:
    """Download NS/NAME[@REV], verify every file and signature, print its folder."""
    result = make_client(ctx).pull(
        ref,
        local_dir=local_dir,
        link=not copy,
        accept_new_key=accept_new_key,
        quiet=quiet,
        workers=workers,
    )
    if not quiet:
        source = "already cached" if result.from_cache else f"{result.bytes_fetched} bytes fetched"
        click.echo(f"verified {result.repo}@{result.commit} ({source})", err=True)
    click.echo(str(result.path))


@main.command()
@click.argument("ref")
@click.pass_context
def verify(ctx: click.Context, ref: str) -> None:
    """Re-hash a cached NS/NAME[@REV] and re-check its signatures (offline)."""
    problems = make_client(ctx).verify(ref)
    if problems:
        from client.errors import IntegrityError

        lines = "\n".join(f"  - {path}: {reason}" for path, reason in problems)
        raise IntegrityError(f"{ref} failed verification and was removed from the cache:\n{lines}")
    click.echo(f"{ref}: every file and signature verified")


@main.command("audit-witness")
@click.option("--refresh", is_flag=True, help="Fetch the newest checkpoint now (checked first)")
@click.option("--export", "export_to", type=click.Path(dir_okay=False, path_type=Path),
              help="Write what is held to FILE (for audit verify --witness)")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the witness document as JSON")
@click.pass_context
def audit_witness(ctx: click.Context, refresh: bool, export_to: Path | None, as_json: bool) -> None:
    """Show the registry audit checkpoints this machine holds; exit 7 on a conflict."""
    client = make_client(ctx)
    if refresh:
        client.witness_log()
    document = client.witness.load()
    if export_to is not None:
        export_to.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    if as_json:
        click.echo(json.dumps(document, indent=1, sort_keys=True))
    else:
        held = [merkle.parse_checkpoint(c) for c in document["checkpoints"]]
        click.echo(f"{client.url}: {len(held)} checkpoint(s) held in {client.witness.path}")
        if held:
            newest = held[-1]
            click.echo(f"newest: {newest['size']} events, root {newest['root']}, {newest['time']}")
        if export_to is not None:
            click.echo(f"exported to {export_to}")
    if document["conflicts"]:
        reasons = "; ".join(c.get("reason", "") for c in document["conflicts"])
        raise IntegrityError(
            f"{len(document['conflicts'])} checkpoint(s) from {client.url} do not extend the "
            f"ones held here ({reasons}); export them for the registry's operators"
        )


@main.command("audit-receipt")
@click.argument("event_id", type=int)
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the receipt (event, leaf, proof, checkpoint) to FILE")  # fmt: skip
@click.pass_context
def audit_receipt(ctx: click.Context, event_id: int, save: Path | None) -> None:
    """Fetch and verify the receipt proving audit event EVENT_ID is in the signed log."""
    from client.witness import verify_receipt

    client = make_client(ctx)
    receipt = client.http.get_json(f"/api/v1/audit/events/{event_id}/proof")
    event = verify_receipt(receipt, client.trust.registry_keys())
    if save is not None:
        save.write_text(json.dumps(receipt, indent=1, sort_keys=True) + "\n")
    click.echo(
        f"event {event['id']} (#{event['seq']}, {event['tag']}, {event['actor']}, "
        f"{event['target']}) is in the log under checkpoint {receipt['tree_size']}"
    )


@main.command("trust-key")
@click.argument("key_id", required=False)
@click.option("--institution", help="Trust a publisher key of this institution instead")
@click.pass_context
def trust_key(ctx: click.Context, key_id: str | None, institution: str | None) -> None:
    """Explicitly trust the registry's listed key(s) (or an institution's), e.g. after a change."""
    for line in make_client(ctx).trust_key(key_id, institution=institution):
        click.echo(f"trusted {line}")


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("repo")
@click.option("--tag", help="Tag for the new version, e.g. v2")
@click.option("--base", help="Base model version NS/NAME@REV (lineage)")
@click.option("--tier", help="Access tier of a new model (default: the card's access_tier)")
@click.option("--dua", help="DUA of a new model (default: the card's, else the tier's)")
@click.option("--sign-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Sign the manifest with this Ed25519 key (PEM or base64)")  # fmt: skip
@click.option("-q", "--quiet", is_flag=True)
@click.pass_context
def push(
    ctx: click.Context,
    folder: Path,
    repo: str,
    tag: str | None,
    base: str | None,
    tier: str | None,
    dua: str | None,
    sign_key: Path | None,
    quiet: bool,
) -> None:
    """Validate FOLDER locally, upload it as a new version of REPO, and commit."""
    from client.push import Uploader

    client = make_client(ctx)
    uploader = Uploader(
        client.http, client.settings.cache_dir / "uploads", quiet=quiet, notify=_notice
    )
    result = uploader.push(folder, repo, tag=tag, base=base, tier=tier, dua=dua, sign_key=sign_key)
    commit = result.version.get("commit") or "(assigned at publication)"
    click.echo(f"{repo}: {result.state} (version {result.version.get('id')}, commit {commit})")
    if result.state == "in-review":
        click.echo("  a registry admin reviews it before it is published")
    click.echo(f"  {result.model_url}")


@main.command("request-access")
@click.argument("repo")
@click.option("--field", "fields", multiple=True, metavar="NAME=VALUE",
              help="A field the model asks for (prompted when missing)")  # fmt: skip
@click.pass_context
def request_access(ctx: click.Context, repo: str, fields: tuple[str, ...]) -> None:
    """Ask for access to a contributor-review model; shows the request's status."""
    client = make_client(ctx)
    given: dict[str, str] = {}
    for item in fields:
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--field {item!r}: use NAME=VALUE")
        given[name.strip()] = value
    form = client.access_form(repo)
    if not form.get("requires_request"):
        click.echo(
            f"{repo} is in the '{form.get('tier')}' tier, which needs no access request: "
            f"registry-client info {repo} says what, if anything, you still need before you "
            f"can download it."
        )
        return
    for field in form.get("fields") or []:
        name = str(field.get("name"))
        if name not in given:
            given[name] = click.prompt(str(field.get("label") or name))
    request = client.request_access(repo, given)
    click.echo(f"access request {request.get('id')} for {repo}: {request.get('status')}")
    missing = request.get("still_missing") or []
    if missing:
        click.echo("Also needed before you can download:")
        for item in missing:
            fix = f" (fix at {client.url}{item['fix_url']})" if item.get("fix_url") else ""
            click.echo(f"  - {item.get('message')}{fix}")


@main.command()
@click.argument("ref")
@click.argument("prompts", nargs=-1)
@click.option("-n", "count", default=1, show_default=True, help="Images per prompt")
@click.option("--seed", default=0, show_default=True, help="Image i gets seed + i")
@click.option("--steps", default=25, show_default=True)
@click.option("--guidance", default=DEFAULT_GUIDANCE, show_default=True)
@click.option("--scheduler", default="dpm++", show_default=True,
              type=click.Choice(["dpm++", "dpm++-karras", "unipc", "euler", "euler-a", "ddim",
                                 "pndm", "model"]))  # fmt: skip
@click.option("--height", type=int)
@click.option("--width", type=int)
@click.option("--batch-size", default=4, show_default=True)
@click.option("--negative-prompt", default="")
@click.option("--prompts-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="One prompt per line")  # fmt: skip
@click.option("--device", default="auto", show_default=True,
              type=click.Choice(["auto", "cuda", "mps", "cpu"]))  # fmt: skip
@click.option("--dtype", default="auto", show_default=True,
              type=click.Choice(["auto", "fp32", "fp16", "bf16"]))  # fmt: skip
@click.option("--compile", "use_compile", is_flag=True, help="torch.compile the UNet")
@click.option("--threads", default=0, help="CPU threads for torch (0: torch's default)")
@click.option("--dicom", is_flag=True, help="Also write DICOM Secondary Capture files")
@click.option("--dicom-prompt", is_flag=True,
              help="Put the prompt's text into DICOM files (default: its SHA-256)")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("synthetic"),
              show_default=True)  # fmt: skip
@click.option("-q", "--quiet", is_flag=True)
@click.pass_context
def generate(ctx: click.Context, ref: str, prompts: tuple[str, ...], **options: Any) -> None:
    """Sample labelled synthetic images from REF (NS/NAME[@REV] or a local folder)."""
    from client.generate import GenerateOptions
    from client.generate import generate as run

    listed = list(prompts)
    if options["prompts_file"]:
        text = options["prompts_file"].read_text(encoding="utf-8")
        listed += [line.strip() for line in text.splitlines() if line.strip()]
    folder, provenance = make_client(ctx).open_model(ref, quiet=options["quiet"])
    settings = GenerateOptions(
        prompts=listed,
        n=options["count"],
        seed=options["seed"],
        steps=options["steps"],
        guidance=options["guidance"],
        scheduler=options["scheduler"],
        height=options["height"],
        width=options["width"],
        batch_size=options["batch_size"],
        negative_prompt=options["negative_prompt"],
        device=options["device"],
        dtype=options["dtype"],
        compile=options["use_compile"],
        threads=options["threads"],
        dicom=options["dicom"],
        dicom_prompt=options["dicom_prompt"],
        quiet=options["quiet"],
    )
    paths = run(folder, options["out"], settings, provenance, notify=_notice)
    click.echo(f"wrote {len(paths)} synthetic image(s) to {options['out']}", err=True)
    for path in paths:
        click.echo(str(path))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(prog_name="registry-client"))
