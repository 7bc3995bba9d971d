"""The encrypted local store: versions, the key file, names, atomic and concurrent writes."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from mlplane.data.secrets import SecretNotFound, SecretValue, check_name
from mlplane.data.secrets.local import KEY_ENV, LocalSecretStore
from mlplane.errors import ConfigError, PermanentError

VALUE = b"sk-local-test-0123456789"


def store(tmp_path: Path) -> LocalSecretStore:
    return LocalSecretStore(tmp_path / ".mlplane" / "secrets")


def add(s: LocalSecretStore, name: str, value: bytes) -> int:
    try:
        return s.add_version(name, SecretValue(value)).version
    except SecretNotFound:
        s.create(name)
        return s.add_version(name, SecretValue(value)).version


def test_versions_are_numbered_and_latest_is_the_newest(tmp_path: Path) -> None:
    s = store(tmp_path)
    assert s.list_secrets() == ()
    assert add(s, "openai", b"one") == 1
    assert add(s, "openai", b"two") == 2
    assert s.access("openai", "latest")[1].reveal() == b"two"
    meta, value = s.access("openai", 1)
    assert (meta.version, value.reveal()) == (1, b"one")
    [info] = s.list_secrets()
    assert info.name == "openai" and info.latest == 2
    assert [v.version for v in info.versions] == [1, 2]
    assert all(v.state == "enabled" and v.created.endswith("Z") for v in info.versions)


def test_missing_secret_and_version(tmp_path: Path) -> None:
    s = store(tmp_path)
    with pytest.raises(SecretNotFound, match="secret 'nope' not found"):
        s.access("nope", "latest")
    add(s, "a", b"x")
    with pytest.raises(SecretNotFound, match="version 7 of secret 'a'"):
        s.access("a", 7)
    with pytest.raises(SecretNotFound):
        s.add_version("b", SecretValue(b"x"))


def test_values_are_encrypted_at_rest_and_files_private(tmp_path: Path) -> None:
    s = store(tmp_path)
    add(s, "openai", VALUE)
    for path in s.root.rglob("*"):
        if path.is_file():
            assert VALUE not in path.read_bytes()
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(s.root.stat().st_mode) == 0o700
    record = json.loads((s.root / "openai" / "1.json").read_text())
    assert record["cipher"] == "AES-256-GCM"
    assert not [p for p in s.root.rglob(".tmp-*")], "temporary files left behind"


def test_key_file_is_made_on_first_write_only(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.list_secrets()
    assert not s.key_file.exists()
    add(s, "a", b"x")
    assert stat.S_IMODE(s.key_file.stat().st_mode) == 0o600
    key = s.key_file.read_bytes()
    add(s, "a", b"y")
    assert s.key_file.read_bytes() == key


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    s = store(tmp_path)
    add(s, "a", b"x")
    os.chmod(s.key_file, mode)
    with pytest.raises(ConfigError, match=r"group or others .*chmod 600") as err:
        s.access("a", "latest")
    assert str(s.key_file) in str(err.value)
    with pytest.raises(ConfigError, match="chmod 600"):
        s.add_version("a", SecretValue(b"y"))
    assert [v.version for v in s.list_secrets()[0].versions] == [1]


def test_key_file_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "elsewhere" / "key"
    monkeypatch.setenv(KEY_ENV, str(key))
    s = LocalSecretStore.for_project(tmp_path / "mlplane.toml")
    assert s.root == tmp_path / ".mlplane" / "secrets"
    add(s, "a", b"x")
    assert key.is_file() and not (s.root / "master.key").exists()


def test_a_wrong_key_or_a_moved_file_does_not_decrypt(tmp_path: Path) -> None:
    s = store(tmp_path)
    add(s, "a", b"first")
    add(s, "b", b"other")
    # a version file copied to another secret's name: bound by associated data
    (s.root / "b" / "1.json").write_bytes((s.root / "a" / "1.json").read_bytes())
    with pytest.raises(PermanentError, match="does not decrypt"):
        s.access("b", 1)
    # a different key
    s.key_file.chmod(0o600)
    s.key_file.write_text("A" * 43 + "=\n")
    with pytest.raises(PermanentError, match="does not decrypt"):
        s.access("a", 1)


def test_a_missing_key_is_a_clear_error(tmp_path: Path) -> None:
    s = store(tmp_path)
    add(s, "a", b"x")
    s.key_file.unlink()
    with pytest.raises(PermanentError, match=r"key file .* is missing"):
        s.access("a", "latest")


def test_a_lost_key_is_not_silently_replaced(tmp_path: Path) -> None:
    """With versions in the store, a write does not make a new key (it would orphan them)."""
    s = store(tmp_path)
    add(s, "a", b"x")
    s.key_file.unlink()
    with pytest.raises(PermanentError, match=r"key file .* is missing"):
        s.add_version("a", SecretValue(b"y"))
    assert not s.key_file.exists()
    (s.root / "not-a-secret.d").mkdir()
    assert [i.name for i in s.list_secrets()] == ["a"]


BAD_NAMES = ["", "..", "../x", "a/b", "/etc/passwd", "a\\b", "a.b", "x" * 256, "a b", "é"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_and_nothing_is_written(tmp_path: Path, name: str) -> None:
    s = store(tmp_path)
    for call in (
        lambda: s.create(name),
        lambda: s.add_version(name, SecretValue(b"x")),
        lambda: s.access(name, "latest"),
    ):
        with pytest.raises(ConfigError, match=r"^name: .*not a valid secret name"):
            call()
    assert not (tmp_path / ".mlplane").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_good_names() -> None:
    for name in ("a", "A-b_9", "x" * 255):
        assert check_name(name) == name


def test_concurrent_writers_never_lose_a_version(tmp_path: Path) -> None:
    s = store(tmp_path)
    add(s, "shared", b"seed")
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for j in range(5):
                LocalSecretStore(s.root).add_version("shared", SecretValue(f"{i}-{j}".encode()))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not errors
    versions = [v.version for v in s.list_secrets()[0].versions]
    assert versions == list(range(1, 42))
    values = {s.access("shared", n)[1].reveal() for n in versions[1:]}
    assert values == {f"{i}-{j}".encode() for i in range(8) for j in range(5)}
