"""Access tokens of signed-in users are cached until they expire (as gcloud's access_tokens.db),
per token endpoint and credential file; a new sign-in, a sign-out or a refused token ends them."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from mlplane.apis import token_cache

URI = "http://127.0.0.1:5000/oauth2/token"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "config"
    (d / "credentials").mkdir(parents=True)
    for var in ("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("GCE_METADATA_HOST", raising=False)
    monkeypatch.setenv("MLPLANE_CONFIG_DIR", str(d))
    return d


def credential(config: Path, account: str = "alice@acme.com") -> Path:
    path = config / "credentials" / f"{account}.json"
    path.write_text(json.dumps({"type": "mlplane_user", "account": account, "refresh_token": "r"}))
    (config / "active").write_text(account)
    return path


def test_a_remembered_token_is_found_until_it_is_about_to_expire(config: Path) -> None:
    cred = credential(config)
    token_cache.remember(URI, str(cred), "tok-1", time.time() + 3600)
    assert token_cache.lookup(URI, str(cred)) == "tok-1"
    assert token_cache.fast_token(URI) == "tok-1"
    assert stat.S_IMODE((config / token_cache.FILE).stat().st_mode) == 0o600
    token_cache.remember(URI, str(cred), "tok-2", time.time() + token_cache.EARLY - 1)
    assert token_cache.lookup(URI, str(cred)) is None


def test_each_token_endpoint_has_its_own_tokens(config: Path) -> None:
    cred = credential(config)
    token_cache.remember(URI, str(cred), "tok-1", time.time() + 3600)
    assert token_cache.lookup("http://127.0.0.1:6000/oauth2/token", str(cred)) is None


def test_signing_in_again_or_out_ends_the_cached_token(config: Path) -> None:
    cred = credential(config)
    token_cache.remember(URI, str(cred), "tok-1", time.time() + 3600)
    cred.write_text(cred.read_text().replace('"r"', '"a-new-refresh-token"'))
    assert token_cache.lookup(URI, str(cred)) is None
    token_cache.remember(URI, str(cred), "tok-2", time.time() + 3600)
    cred.unlink()
    assert token_cache.lookup(URI, str(cred)) is None and token_cache.fast_token(URI) is None


def test_a_forgotten_token_is_gone_and_others_stay(config: Path) -> None:
    alice, bob = credential(config, "alice@acme.com"), credential(config, "bob@acme.com")
    token_cache.remember(URI, str(alice), "a", time.time() + 3600)
    token_cache.remember(URI, str(bob), "b", time.time() + 3600)
    token_cache.forget(URI, str(alice))
    assert token_cache.lookup(URI, str(alice)) is None
    assert token_cache.lookup(URI, str(bob)) == "b"


def test_fast_token_follows_the_order_of_default_credentials(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = credential(config, "alice@acme.com")
    token_cache.remember(URI, str(alice), "alice-token", time.time() + 3600)
    assert token_cache.fast_token(URI) == "alice-token"
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:1")  # a VM's identity: ask its server
    assert token_cache.fast_token(URI) is None
    key_file = tmp_path / "bob.json"
    key_file.write_text('{"type": "mlplane_user", "account": "bob@acme.com", "refresh_token": "s"}')
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    assert token_cache.fast_token(URI) is None  # nothing cached for bob's file yet
    token_cache.remember(URI, str(key_file), "bob-token", time.time() + 3600)
    assert token_cache.fast_token(URI) == "bob-token"
    token_file = tmp_path / "token"
    token_file.write_text("a-token-file\n")
    monkeypatch.setenv("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", str(token_file))
    assert token_cache.fast_token(URI) == "a-token-file"


def test_a_damaged_cache_is_a_miss_not_an_error(config: Path) -> None:
    cred = credential(config)
    (config / token_cache.FILE).write_text("{not json")
    assert token_cache.lookup(URI, str(cred)) is None
    token_cache.remember(URI, str(cred), "tok", time.time() + 3600)
    assert token_cache.lookup(URI, str(cred)) == "tok"
    assert not [p for p in os.listdir(config) if p.endswith(".tmp")]
