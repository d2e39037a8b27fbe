"""Configuration from the environment, the production secret check, and the first admin."""
from __future__ import annotations

from pathlib import Path

import pytest

from app import bootstrap_first_admin, create_app
from config import Config, ConfigError


def test_environment_variables_are_read_and_typed(tmp_path):
    config = Config.from_env({
        "DATA_DIR": str(tmp_path),
        "ACCESS_TOKEN_MINUTES": "5",
        "ALLOW_REGISTRATION": "false",
        "RATELIMIT_LOGIN": "7 per minute",
        "METRICS_ALLOWED_NETWORKS": "127.0.0.0/8, 10.1.0.0/16",
    })
    assert config.access_token_minutes == 5 and config.allow_registration is False
    assert config.ratelimit_login == "7 per minute"
    assert config.metrics_allowed_networks == ("127.0.0.0/8", "10.1.0.0/16")
    assert config.database_url == f"sqlite:///{tmp_path.resolve() / 'app.db'}"


def test_bad_values_are_refused_with_a_clear_message(tmp_path):
    with pytest.raises(ConfigError, match="whole number"):
        Config.from_env({"DATA_DIR": str(tmp_path), "ACCESS_TOKEN_MINUTES": "soon"})
    with pytest.raises(ConfigError, match="APP_ENV"):
        Config.from_env({"DATA_DIR": str(tmp_path), "APP_ENV": "prod"})


@pytest.mark.parametrize("secret", ["", "changeme", "short-secret", "a" * 64])
def test_production_refuses_a_missing_or_weak_secret(tmp_path, secret):
    config = Config.from_env({"APP_ENV": "production", "DATA_DIR": str(tmp_path), "JWT_SECRET_KEY": secret})
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY"):
        create_app(config)
    assert not (tmp_path / "jwt_secret").exists()


def test_production_starts_with_a_strong_secret(tmp_path):
    strong = "Zx8-kP2q" * 3 + "R7mW5tLv9nB4cD6f"
    app = create_app(Config.from_env({"APP_ENV": "production", "DATA_DIR": str(tmp_path), "JWT_SECRET_KEY": strong}))
    assert app.config["JWT_SECRET_KEY"] == strong and app.config["TESTING"] is False


def test_development_generates_one_secret_and_keeps_it(tmp_path):
    first = create_app(Config.from_env({"DATA_DIR": str(tmp_path)}))
    second = create_app(Config.from_env({"DATA_DIR": str(tmp_path)}))
    secret = first.config["JWT_SECRET_KEY"]
    assert len(secret) >= 32 and secret == second.config["JWT_SECRET_KEY"]
    assert (Path(tmp_path) / "jwt_secret").stat().st_mode & 0o077 == 0


def test_first_start_creates_an_admin_and_prints_the_password_once(make_app, capsys):
    app = make_app(bootstrap_admin=True)
    password = bootstrap_first_admin(app)
    printed = capsys.readouterr().err
    assert password and password in printed and "username: admin" in printed
    client = app.test_client()
    tokens = client.post("/auth/login", json={"username": "admin", "password": password}).get_json()
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}).get_json()
    assert me["role"] == "admin"
    restarted = make_app(bootstrap_admin=True)
    assert bootstrap_first_admin(restarted) is None
    assert password not in capsys.readouterr().err
