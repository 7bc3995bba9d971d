"""Entries have Cloud Logging's LogEntry shape: fields, the LogSeverity enum, RFC 3339 UTC."""

from __future__ import annotations

import json
import re
import time

import pytest

from mlplane.data.logs.encode import Clock, InsertIds, LineEncoder
from mlplane.data.logs.entry import (
    NAME_LABEL,
    LogEntry,
    MonitoredResource,
    Severity,
    log_name,
    parse_rfc3339,
    rfc3339,
)
from mlplane.data.logs.reader import parse_since
from mlplane.errors import ConfigError

RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")
RES = MonitoredResource("train-1", "1234567890123456789", "us-central1-a", "acme-ml")


def test_severity_enum_matches_cloud_logging() -> None:
    assert [(s.name, s.value) for s in Severity] == [
        ("DEFAULT", 0),
        ("DEBUG", 100),
        ("INFO", 200),
        ("NOTICE", 300),
        ("WARNING", 400),
        ("ERROR", 500),
        ("CRITICAL", 600),
        ("ALERT", 700),
        ("EMERGENCY", 800),
    ]
    assert Severity.parse("warn") is Severity.WARNING
    assert Severity.parse(500) is Severity.ERROR
    with pytest.raises(ConfigError, match="not one of DEFAULT"):
        Severity.parse("LOUD")


def test_encoded_line_is_a_valid_log_entry() -> None:
    enc = LineEncoder(
        log_name("acme-ml", "cos_containers"),
        RES,
        Severity.WARNING,
        {"stream": "stdout"},
        Clock(),
        InsertIds(),
    )
    ns = time.time_ns()
    text = json.loads(enc.line(ns, 'he said "hi"\tand left'))
    assert text == {
        "logName": "projects/acme-ml/logs/cos_containers",
        "resource": {
            "type": "gce_instance",
            "labels": {
                "instance_id": "1234567890123456789",
                "zone": "us-central1-a",
                "project_id": "acme-ml",
            },
        },
        "timestamp": rfc3339(ns),
        "severity": "WARNING",
        "insertId": text["insertId"],
        "textPayload": 'he said "hi"\tand left',
        "labels": {NAME_LABEL: "train-1", "stream": "stdout"},
    }
    assert RFC3339_UTC.fullmatch(text["timestamp"])
    as_json = json.loads(enc.line(ns, {"loss": 0.25, "epoch": 3}))
    assert as_json["jsonPayload"] == {"loss": 0.25, "epoch": 3}
    assert "textPayload" not in as_json
    assert as_json["insertId"] != text["insertId"]
    entry = LogEntry.from_json(text)
    assert entry.to_json() == text
    assert entry.timestamp_ns == ns and entry.severity is Severity.WARNING
    assert entry.log_id == "cos_containers"


def test_log_name_url_encodes_the_log_id() -> None:
    assert log_name("p", "a/b") == "projects/p/logs/a%2Fb"
    with pytest.raises(ConfigError):
        log_name("p", "bad id")


def test_an_entry_has_exactly_one_payload() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        LogEntry("projects/p/logs/x", RES, 0, Severity.INFO, "1")
    with pytest.raises(ValueError, match="exactly one"):
        LogEntry("projects/p/logs/x", RES, 0, Severity.INFO, "1", "t", {"a": 1})


def test_resource_names_follow_compute_engine_rules() -> None:
    with pytest.raises(ConfigError, match="not an instance name"):
        MonitoredResource("Train_1", "1", "z", "p")


def test_rfc3339_round_trips_and_accepts_offsets() -> None:
    ns = 1_764_087_312_123_456_789
    assert rfc3339(ns) == "2025-11-25T16:15:12.123456789Z"
    assert parse_rfc3339(rfc3339(ns)) == ns
    assert parse_rfc3339("2025-11-25T17:15:12.5+01:00") == 1_764_087_312_500_000_000
    assert parse_rfc3339("2025-11-25T16:15:12Z") == 1_764_087_312_000_000_000
    with pytest.raises(ValueError):
        parse_rfc3339("2025-11-25 16:15")


def test_parse_since() -> None:
    now = 10_000 * 10**9
    assert parse_since("10m", now) == now - 600 * 10**9
    assert parse_since("2h", now) == now - 7200 * 10**9
    assert parse_since("1.5s", now) == now - 1_500_000_000
    assert parse_since("1970-01-01T00:00:01Z", now) == 10**9
    with pytest.raises(ConfigError, match="--since"):
        parse_since("yesterday", now)


def test_batch_encoding_keeps_tricky_texts_whole() -> None:
    texts = ['a","b', "ends with \\", "", '"', "ü ✓ \x00 \x1b[31m", '","', '\\\\","']
    ids = InsertIds()
    enc = LineEncoder(log_name("p", "x"), RES, Severity.ERROR, {}, Clock(), ids)
    lines = enc.text_lines(time.time_ns(), texts).splitlines()
    got = [json.loads(ln) for ln in lines]
    assert [d["textPayload"] for d in got] == texts
    assert len({d["insertId"] for d in got}) == len(texts)
    assert enc.text_lines(0, []) == ""
