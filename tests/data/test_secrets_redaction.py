"""A secret's value never shows up in a repr, a log line, an error or a traceback: the errors
of the SDK are provoked one by one with a recognizable value and every rendering is searched."""

from __future__ import annotations

import json
import logging
import os
import pickle
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from mlplane.data.secrets import SecretValue, open_secrets
from mlplane.data.secrets.value import MAX_VALUE_BYTES

VALUE = "hunter2-do-not-leak-9c41"


def renderings(exc: BaseException) -> list[str]:
    out = [str(exc), repr(exc), *(repr(a) for a in exc.args)]
    out.append("".join(traceback.format_exception(exc)))
    out += traceback.TracebackException.from_exception(exc, capture_locals=True).format()
    return out


def assert_no_leak(texts: list[str]) -> None:
    for text in texts:
        assert VALUE not in text, text
        assert VALUE.encode().hex() not in text


def test_secret_value_renders_redacted(caplog: pytest.LogCaptureFixture) -> None:
    v = SecretValue(VALUE)
    logging.getLogger("test").warning("value %s %r", v, v)
    texts = [repr(v), str(v), f"{v}", f"{v!r}", f"{v:>40}", "%s" % v, caplog.text]  # noqa: UP031
    texts += [repr([v]), repr({"k": v}), repr((v,))]
    assert_no_leak(texts)
    assert "<redacted>" in repr(v)
    assert v.reveal() == VALUE.encode() and v.text() == VALUE
    assert v == SecretValue(VALUE) and v != SecretValue("other")


def test_secret_value_does_not_serialize_by_accident() -> None:
    v = SecretValue(VALUE)
    with pytest.raises(TypeError) as err:
        json.dumps({"v": v})
    assert_no_leak(renderings(err.value))
    with pytest.raises(TypeError):
        pickle.dumps(v)
    with pytest.raises(TypeError):
        hash(v)


def provoke(project_file: Path) -> dict[str, Callable[[], object]]:
    team = open_secrets(project_file, "alice@acme.com", "local")
    team.set("openai", SecretValue(b"seed"))
    store = team.backend
    root = project_file.parent / ".mlplane" / "secrets"

    def tampered() -> object:
        team.set("tampered", SecretValue(VALUE))
        f = root / "tampered" / "1.json"
        record = json.loads(f.read_text())
        record["ciphertext"] = record["ciphertext"][::-1]
        f.write_text(json.dumps(record))
        return team.get("tampered")

    def unwritable() -> object:
        store.create("blocked")
        real_link = os.link

        def link(src: str, dst: str) -> None:
            raise PermissionError(13, "Permission denied", dst)

        os.link = link  # type: ignore[assignment]
        try:
            return store.add_version("blocked", SecretValue(VALUE))
        finally:
            os.link = real_link

    def wide_key() -> object:
        os.chmod(root / "master.key", 0o644)
        try:
            return team.set("openai", SecretValue(VALUE))
        finally:
            os.chmod(root / "master.key", 0o600)

    return {
        "bad name": lambda: team.set("../etc", SecretValue(VALUE)),
        "value as name": lambda: team.get(VALUE + "/x"),
        "denied set": lambda: open_secrets(project_file, "training", "local").set(
            "openai", SecretValue(VALUE)
        ),
        "too large": lambda: team.set("big", SecretValue(VALUE * (MAX_VALUE_BYTES // 10))),
        "missing version": lambda: team.get("openai", 99),
        "tampered": tampered,
        "unwritable": unwritable,
        "key too open": wide_key,
    }


@pytest.mark.parametrize(
    "case",
    [
        "bad name",
        "denied set",
        "too large",
        "missing version",
        "tampered",
        "unwritable",
        "key too open",
    ],
)
def test_errors_never_carry_the_value(
    project_file: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    call = provoke(project_file)[case]
    with pytest.raises(Exception) as err:
        call()
    exc = err.value
    from mlplane.errors import MlplaneError

    assert isinstance(exc, MlplaneError), f"{case}: {type(exc).__name__} escaped unmapped"
    try:
        raise exc
    except Exception:
        formatted = traceback.format_exc()
    assert_no_leak([*renderings(exc), formatted, caplog.text])


def test_a_bad_name_error_names_the_argument(project_file: Path) -> None:
    with pytest.raises(Exception) as err:
        provoke(project_file)["value as name"]()
    assert str(err.value).startswith("name: ")
    assert "not a valid secret name" in str(err.value)
