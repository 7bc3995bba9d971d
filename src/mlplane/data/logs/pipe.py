"""`python -m mlplane.data.logs.pipe --resource NAME -- CMD ARGS...`: run CMD, turn each line it
prints into a log entry (stdout INFO, stderr ERROR, labelled `stream`), and exit with its exit
status (128+N when a signal N ended it). A line that is a JSON object becomes a jsonPayload
entry whose `severity` field, if valid, sets the entry's (Cloud Logging's structured logging).

The pipe logs the command's output and one closing entry with its exit status, nothing else:
not the command line, not the environment (which may carry secrets). SIGTERM and SIGHUP are
forwarded to CMD; SIGINT is left to CMD (a terminal sends it to the whole process group) while
the pipe keeps draining its output.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from mlplane.data.logs.encode import LineEncoder
from mlplane.data.logs.entry import CONTAINER_LOG, Severity
from mlplane.data.logs.writer import LogWriter
from mlplane.errors import ConfigError, MlplaneError

CHUNK = 1 << 20
MAX_LINE = 256 * 1024  # Cloud Logging's limit for one entry
PIPE_SIZE = 1 << 20  # F_SETPIPE_SZ: fewer wake-ups, a job rarely blocks on a full pipe
_F_SETPIPE_SZ = 1031
LINGER = 0.05  # seconds a reader waits for more output after emptying the pipe
FILL_RATE = 20e6  # bytes/s a job may print during that wait without blocking on a full pipe


def structured(line: str) -> dict[str, Any] | None:
    """A line that is a JSON object, as Cloud Logging's agents read one: a jsonPayload."""
    if not (line.startswith("{") and line.rstrip().endswith("}")):
        return None
    try:
        payload = json.loads(line)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def emit(
    text: str, writer: LogWriter, enc: LineEncoder, stream: str, default: Severity, ns: int
) -> None:
    """Queue the lines of `text`: plain ones as textPayload (in batches), JSON objects as
    jsonPayload with their `severity` field lifted into the entry's, as on GCP."""
    lines = text.split("\n")
    if not text.startswith("{") and "\n{" not in text:
        writer.write_texts(lines, enc, ns)
        return
    plain: list[str] = []
    for line in lines:
        payload = structured(line)
        if payload is None:
            plain.append(line)
            continue
        if plain:
            writer.write_texts(plain, enc, ns)
            plain = []
        severity = default
        with contextlib.suppress(ConfigError, ValueError, TypeError, AttributeError):
            severity = Severity.parse(payload["severity"]) if "severity" in payload else default
            payload.pop("severity", None)
        writer.write(payload, severity, {"stream": stream}, timestamp_ns=ns)
    if plain:
        writer.write_texts(plain, enc, ns)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def forward(
    src: int,
    writer: LogWriter,
    stream: str,
    default: Severity,
    tee: int | None,
    linger: float = 0.0,
) -> None:
    """Read `src` to EOF, queueing each complete line (and a last unterminated one). A line
    ends at "\n", "\r\n" or a lone "\r" (a progress bar's update); one longer than MAX_LINE
    is cut.

    After a read that emptied the pipe, wait `linger` seconds for more to collect: one wake-up
    per batch instead of one per write of the job, which then writes into a roomy pipe buffer
    without waking anyone (entries carry the time they were read)."""
    enc = writer.encoder(default, stream=stream)
    partial = b""
    after_cr = False
    while True:
        chunk = os.read(src, CHUNK)
        ns = time.time_ns()
        if not chunk:
            break
        if linger and len(chunk) < CHUNK:
            time.sleep(linger)
        if tee is not None:
            write_all(tee, chunk)
        if after_cr and chunk.startswith(b"\n"):  # the rest of a "\r\n" cut by the last read
            chunk = chunk[1:]
        data = partial + chunk
        end = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        partial = data[end:]
        after_cr = data[end - 1 : end] == b"\r"
        if end:
            text = data[: end - 1].decode("utf-8", "replace")
            if "\r" in text:  # progress bars redraw with "\r" before each update: no blanks
                lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
                text = "\n".join(line for line in lines if line)
            if text:
                emit(text, writer, enc, stream, default, ns)
        while len(partial) > MAX_LINE:  # no end in sight: cut entries of the maximum size
            emit(partial[:MAX_LINE].decode("utf-8", "replace"), writer, enc, stream, default, ns)
            partial = partial[MAX_LINE:]
    if partial:
        emit(partial.decode("utf-8", "replace"), writer, enc, stream, default, ns)


def run(
    argv: Sequence[str],
    writer: LogWriter,
    tee: bool = False,
) -> int:
    """Run `argv` with its output logged through `writer`; its exit status (128+N on signal N)."""
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    linger = 0.0
    for f in (proc.stdout, proc.stderr):
        with contextlib.suppress(OSError):  # Linux only; the default 64 KiB works too
            size = fcntl.fcntl(f.fileno(), _F_SETPIPE_SZ, PIPE_SIZE)
            linger = min(LINGER, size / FILL_RATE)
    streams = [
        (proc.stdout.fileno(), "stdout", Severity.INFO, 1),
        (proc.stderr.fileno(), "stderr", Severity.ERROR, 2),
    ]
    threads = [
        threading.Thread(target=forward, args=(fd, writer, name, sev, out if tee else None, linger))
        for fd, name, sev, out in streams
    ]
    for t in threads:
        t.start()

    def relay(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            old[sig] = signal.signal(sig, relay)
        old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = proc.wait()
        for t in threads:
            t.join()
    finally:
        proc.stdout.close()  # the readers are done (or the job could not start)
        proc.stderr.close()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    status = 128 - code if code < 0 else code
    writer.write(
        f"process exited with status {status}",
        Severity.INFO if status == 0 else Severity.ERROR,
        {"stream": "mlplane-pipe"},
    )
    return status


def main(args: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m mlplane.data.logs.pipe",
        description="Run CMD and log its output lines as entries of instance NAME.",
    )
    p.add_argument("--resource", metavar="NAME", help="instance name (default: the metadata's)")
    p.add_argument("--log", default=CONTAINER_LOG, metavar="LOG_ID")
    p.add_argument("--project", metavar="FILE", help="project file (default: found upward)")
    p.add_argument("--tee", action="store_true", help="also copy the output to this process's")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    ns = p.parse_args(sys.argv[1:] if args is None else list(args))
    cmd = ns.cmd[1:] if ns.cmd[:1] == ["--"] else ns.cmd
    if not cmd:
        p.error("name the command to run after --")
    try:
        writer = LogWriter(ns.resource, ns.log, project_file=ns.project)
    except MlplaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        status = run(cmd, writer, tee=ns.tee)
    except OSError as exc:  # CMD not found or not executable
        print(f"error: cannot run {cmd[0]}: {exc.strerror}", file=sys.stderr)
        writer.write(f"cannot run {os.path.basename(cmd[0])}: {exc.strerror}", Severity.ERROR)
        status = 127
    try:
        writer.close()
    except MlplaneError as exc:  # the job's status still stands; the lost logs are reported
        print(f"error: {exc}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
