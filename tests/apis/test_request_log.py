"""The dry-run log: blocks in the order calls would be made, comments apart, parsed back."""

from __future__ import annotations

import threading

from mlplane.apis.request import DryRunLog, Request
from tests.dryrun_helpers import parse


def test_render_and_parse_back() -> None:
    log = DryRunLog("user:alice@acme.com")
    log.read(Request("GET", "https://compute.googleapis.com/compute/v1/projects/p"), "404")
    log.note("step + create instance/x\ntwo lines")
    sent = [
        Request("POST", "https://h/a?x=1", {"name": "x", "n": [1, 2]}),
        Request("PUT", "<session>", None, (("Content-Range", "bytes 0-3/4"),), "<4 bytes from f>"),
        Request("DELETE", "https://h/a/x"),
        Request("POST", "https://h/b:disable", {}),
    ]
    for r in sent:
        log.send(r)
    text = log.render()
    assert text.startswith("# dry run as user:alice@acme.com: the requests below were NOT sent")
    assert "# sent: GET https://compute.googleapis.com/compute/v1/projects/p (404)" in text
    assert "# step + create instance/x\n# two lines" in text
    assert parse(text) == sent == log.requests
    assert [r.url for r in log.reads] == ["https://compute.googleapis.com/compute/v1/projects/p"]
    assert [r.mutates for r in sent] == [True, True, True, True]
    assert not Request("GET", "u").mutates


def test_an_empty_run_says_nothing_would_be_sent() -> None:
    text = DryRunLog().render()
    assert parse(text) == [] and text.endswith("# no request would be sent")


def test_concurrent_reads_are_all_kept() -> None:
    log = DryRunLog()
    threads = [
        threading.Thread(target=lambda i=i: log.read(Request("GET", f"u{i}"))) for i in range(50)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.url for r in log.reads) == sorted(f"u{i}" for i in range(50))
