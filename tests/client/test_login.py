"""Settings, login (token or password), the token file's mode, and key pinning at login."""

from __future__ import annotations

import json
import stat

from sqlalchemy import delete

from client.config import ClientSettings
from tests.client.conftest import run_cli
from tests.fixtures.principals import PASSWORD


def test_flags_beat_environment_beat_config_file(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"url": "http://file.example:1"}))
    (config / "tokens.json").write_text(json.dumps({"http://file.example:1": "rgr_file"}))
    env = {"REGISTRY_CONFIG_DIR": str(config), "XDG_CACHE_HOME": str(tmp_path / "xdg")}

    assert ClientSettings.load(environ=env).token == "rgr_file"
    from_env = ClientSettings.load(environ={**env, "REGISTRY_URL": "http://env.example:2/"})
    assert from_env.url == "http://env.example:2" and from_env.token is None
    flags = ClientSettings.load(url="https://flag.example", token="rgr_flag", environ=env)
    assert (flags.url, flags.token) == ("https://flag.example", "rgr_flag")
    assert flags.cache_dir == tmp_path / "xdg" / "roentgen-registry"


def test_login_with_a_token_stores_it_privately_and_pins_the_key(
    people, counted_server, client_dirs
):
    token = people.token(people.user("res@uni.edu"), "read")

    done = run_cli("--url", counted_server.url, "login", "--token", token)

    assert done.returncode == 0, done.stderr
    assert "Logged in" in done.stdout and "SHA256:" in done.stdout
    tokens = client_dirs["config"] / "tokens.json"
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    assert json.loads(tokens.read_text()) == {counted_server.url: token}
    trust = json.loads(next((client_dirs["config"] / "trust").glob("*.json")).read_text())
    assert len(trust["registry_keys"]) == 1
    # Later commands find the registry and the token on their own.
    who = run_cli("whoami")
    assert who.returncode == 0 and "res@uni.edu" in who.stdout


def test_login_with_email_and_password_creates_a_token(people, counted_server, client_dirs):
    people.user("res@uni.edu")

    done = run_cli(
        "--url", counted_server.url, "login", "--email", "res@uni.edu", "--password", PASSWORD
    )

    assert done.returncode == 0, done.stderr
    stored = json.loads((client_dirs["config"] / "tokens.json").read_text())[counted_server.url]
    assert stored.startswith("rgr_")
    assert "registry-client on" in run_cli("whoami").stdout


def test_wrong_credentials_exit_3_with_the_registry_message(people, counted_server, client_dirs):
    people.user("res@uni.edu")
    bad = run_cli("--url", counted_server.url, "login", "--token", "rgr_not-a-real-token")
    assert bad.returncode == 3 and "not known to this registry" in bad.stderr
    wrong = run_cli("--url", counted_server.url, "login", "--email", "res@uni.edu",
                    "--password", "wrong-password-123")  # fmt: skip
    assert wrong.returncode == 3 and "Wrong email or password" in wrong.stderr
    assert not (client_dirs["config"] / "tokens.json").exists()


def test_a_changed_key_at_login_is_refused_unless_accepted(
    registry, people, counted_server, client_dirs
):
    from registry.models import SigningKey

    token = people.token(people.user("res@uni.edu"), "read")
    assert run_cli("--url", counted_server.url, "login", "--token", token).returncode == 0
    with registry.sessions() as db, db.begin():
        db.execute(delete(SigningKey))  # the registry is rebuilt; a new key appears on demand

    refused = run_cli("--url", counted_server.url, "login", "--token", token)
    assert refused.returncode == 8 and "CHANGED" in refused.stderr

    accepted = run_cli("--url", counted_server.url, "login", "--token", token, "--accept-new-key")
    assert accepted.returncode == 0, accepted.stderr
