"""A call as it goes on the wire, and the log a dry run keeps of them (`--dry-run`).

    log = DryRunLog("user:alice@acme.com")
    log.read(Request("GET", "https://compute.googleapis.com/compute/v1/..."))   # was sent
    log.note("step + create instance/nb-alice-lab1")
    log.send(Request("POST", "https://compute.googleapis.com/...", {"name": "nb-alice-lab1"}))
    print(log.render())

A rendered log is blocks separated by blank lines, in the order the calls would be made: a
request block is `METHOD URL`, then its headers worth reviewing (`Name: value`), then its JSON
body (indented), then a summary of a media body (`<N bytes from FILE, md5 ..., crc32c ...>`:
never the bytes). Comment blocks start with `#`: the header, the steps, and the reads that
were sent. Stdlib only.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Request:
    """One HTTP call: what `--dry-run` prints (the method, the URL with its query, the body)."""

    http_method: str
    url: str
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()  # those that change what the call does
    media: str | None = None  # a summary of a non-JSON body part, never its bytes

    def render(self) -> str:
        lines = [f"{self.http_method} {self.url}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if self.body is not None:
            lines.append(json.dumps(self.body, indent=2, sort_keys=True))
        if self.media is not None:
            lines.append(self.media)
        return "\n".join(lines)

    @property
    def mutates(self) -> bool:
        """Every method but GET (and HEAD) may change something; a dry run sends none of them."""
        return self.http_method not in ("GET", "HEAD")


Kind = Literal["send", "read", "note"]


@dataclass(frozen=True)
class Entry:
    kind: Kind  # send: would be sent (was not); read: was sent; note: a comment
    text: str
    request: Request | None = None
    outcome: str = ""  # of a read: "200", or the error it got


HEADER = (
    "# dry run as {who}: the requests below were NOT sent; they are what the command would "
    "send, in order.\n"
    "# Nothing that changes anything was sent. Reads it needed were, with your own "
    "credentials (`# sent:`); values the server would assign are shown as <...>."
)


@dataclass
class DryRunLog:
    """What a dry run sent and would have sent, in order (thread-safe: plans read in
    parallel)."""

    principal: str = ""
    entries: list[Entry] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def send(self, request: Request) -> None:
        """A call the command would make (a dry run does not)."""
        with self._lock:
            self.entries.append(Entry("send", request.render(), request))

    def read(self, request: Request, outcome: str = "200") -> None:
        """A read the dry run did make (the plan needed it)."""
        line = f"# sent: {request.http_method} {request.url} ({outcome})"
        with self._lock:
            self.entries.append(Entry("read", line, request, outcome))

    def note(self, text: str) -> None:
        with self._lock:
            self.entries.append(Entry("note", "\n".join(f"# {t}" for t in text.splitlines())))

    @property
    def requests(self) -> list[Request]:
        """The calls that would be sent, in order."""
        return [e.request for e in self.entries if e.kind == "send" and e.request is not None]

    @property
    def reads(self) -> list[Request]:
        return [e.request for e in self.entries if e.kind == "read" and e.request is not None]

    def render(self) -> str:
        blocks: list[str] = [HEADER.format(who=self.principal or "you")]
        comment = True
        for e in self.entries:
            if e.kind == "send":
                blocks.append(e.text)
                comment = False
            elif comment:
                blocks[-1] += "\n" + e.text
            else:
                blocks.append(e.text)
                comment = True
        if not self.requests:
            blocks.append("# no request would be sent")
        return "\n\n".join(blocks)
