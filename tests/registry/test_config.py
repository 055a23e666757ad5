"""Settings come from REGISTRY_* variables; bad values name the variable."""

from __future__ import annotations

import pytest

from registry.config import ConfigError, Settings


def test_defaults_work_on_a_laptop(tmp_path):
    settings = Settings.from_env({"REGISTRY_INSTANCE_PATH": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'registry.db'}"
    assert settings.storage_url == (tmp_path / "blobs").as_uri()
    assert len(settings.secret_key) >= 32
    # The generated secret is kept, so restarts keep sessions and encrypted keys valid.
    assert Settings.from_env({"REGISTRY_INSTANCE_PATH": str(tmp_path)}).secret_key == (
        settings.secret_key
    )
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REGISTRY_DATABASE_URL", "mysql://x/y"),
        ("REGISTRY_STORAGE_URL", "ftp://x/y"),
        ("REGISTRY_STORAGE_URL", "s3:///no-bucket"),
        ("REGISTRY_SECRET_KEY", "short"),
        ("REGISTRY_MAX_FILE_SIZE", "lots"),
        ("REGISTRY_MAX_FILE_SIZE", "-5"),
        ("REGISTRY_S3_REDIRECT", "perhaps"),
        ("REGISTRY_POLICIES_PATH", "/nonexistent/policies"),
    ],
)
def test_bad_values_fail_naming_the_variable(tmp_path, variable, value):
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({"REGISTRY_INSTANCE_PATH": str(tmp_path), variable: value})
