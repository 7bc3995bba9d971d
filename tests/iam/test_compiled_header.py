"""`project_and_provider` answers as `policy_for` does, from the cache's first line while its
stamps are current (the start-up path of `mlplane status` and the lists, decision 0017)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlplane.errors import ConfigError
from mlplane.iam.compiled import CompiledPolicy, cache_path, policy_for, project_and_provider


def expected(project_file: Path) -> tuple[str, str]:
    policy = policy_for(project_file)
    return policy.project, policy.provider


def test_first_line_answers_without_decoding_the_policy(
    project_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert project_and_provider(project_file) == ("acme-ml", "local")  # builds the cache
    assert project_and_provider(project_file) == expected(project_file)

    def refuse(cls: type[CompiledPolicy], text: str) -> CompiledPolicy:
        raise AssertionError("the policy was decoded")

    monkeypatch.setattr(CompiledPolicy, "from_json", classmethod(refuse))
    assert project_and_provider(str(project_file)) == ("acme-ml", "local")


def test_an_edited_project_file_is_read_again(project_file: Path) -> None:
    assert project_and_provider(project_file) == ("acme-ml", "local")
    project_file.write_text(project_file.read_text().replace('"acme-ml"', '"acme-ml-2"'))
    assert project_and_provider(project_file) == ("acme-ml-2", "local") == expected(project_file)


def test_a_cache_without_them_falls_back_to_the_policy(
    project_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As an earlier mlplane wrote it: the first line has no project or provider."""
    policy_for(project_file)
    path = Path(cache_path(project_file))
    head, _, body = path.read_text().partition("\n")
    header = json.loads(head)
    del header["project"], header["provider"]
    path.write_text(json.dumps(header) + "\n" + body)
    decoded = []
    real = CompiledPolicy.from_json.__func__  # type: ignore[attr-defined]

    def counting(cls: type[CompiledPolicy], text: str) -> CompiledPolicy:
        decoded.append(1)
        result: CompiledPolicy = real(cls, text)
        return result

    monkeypatch.setattr(CompiledPolicy, "from_json", classmethod(counting))
    assert project_and_provider(project_file) == ("acme-ml", "local")
    assert decoded


def test_a_stale_or_foreign_cache_is_not_believed(project_file: Path) -> None:
    policy_for(project_file)
    path = Path(cache_path(project_file))
    head, _, body = path.read_text().partition("\n")
    header = json.loads(head)
    header["project"] = "someone-else"
    header["version"] = "0.0.0"  # another mlplane's
    path.write_text(json.dumps(header) + "\n" + body)
    assert project_and_provider(project_file) == ("acme-ml", "local")
    path.write_text("not json\n")
    assert project_and_provider(project_file) == ("acme-ml", "local")


def test_a_missing_project_file_is_the_same_error(tmp_path: Path) -> None:
    missing = tmp_path / "mlplane.toml"
    with pytest.raises(ConfigError) as by_policy:
        policy_for(missing)
    with pytest.raises(ConfigError) as by_header:
        project_and_provider(missing)
    assert str(by_header.value) == str(by_policy.value)
