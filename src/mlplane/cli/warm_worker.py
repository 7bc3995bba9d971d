"""A warm build worker: Python with mlplane's build steps already imported, forking one child
per step (`python -m mlplane.cli.warm_worker`, started by the local agent: it is a launcher
of the CLI, so it lives beside it).

A Cloud Build step on Google runs in a builder image that is already pulled; locally the step
is `mlplane ci step ...`, and starting an interpreter and importing mlplane's engine, models
and client for it costs more than the step's own work (about 0.2 s of a 0.4 s deploy). So the
agent keeps this process: it imports what steps import once, then forks for each step. The
child becomes exactly what a fresh `python -m mlplane ARGS` would be (environment, working
directory, its own session and process group, output appended to the build's log, death with
its parent) and runs the same `main(ARGS)`; nothing is shared back.

Protocol (JSON lines; the agent is the only client, over this process's stdin and stdout):

    <- {"ready": PID}
    -> {"id": ID, "args": [...], "env": {...}, "cwd": DIR, "log": FILE}
    <- {"id": ID, "pid": PID}              the child runs
    <- {"id": ID, "exit": CODE}            the child ended (negative: killed by that signal)

The worker exits when its stdin closes (the agent stopped or died) and has no thread, so
forking it is safe.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import selectors
import signal
import sys
import traceback

# What `mlplane ci step deploy|undeploy|train` import (measured: ~0.2 s on their start-up path).
PRELOAD = (
    "mlplane.cli.main",
    "mlplane.cli.ci",
    "mlplane.workflows.ci",
    "mlplane.workflows.serving",
    "mlplane.workflows.training",
    "mlplane.workflows.session",
    "mlplane.workflows.compose",
    "mlplane.engine.engine",
    "mlplane.iam.loading",
    "mlplane.providers.gcp.client",
    "mlplane.providers.gcp.compute",
    "mlplane.providers.gcp.servicemanagement",
    "mlplane.data.artifacts",
)
_PR_SET_PDEATHSIG = 1


def preload() -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    from mlplane.apis.discovery import VERSIONS, load

    for api in VERSIONS:  # parsed once here, not in every step
        load(api)


def _send(message: dict[str, object]) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def _child(request: dict[str, object]) -> None:
    """In the forked child: become the step's process, run it, never return."""
    code = 1
    try:
        os.setsid()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        log = os.open(str(request["log"]), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.closerange(3, 1024)  # the worker's pipes and selector are not the step's
        env = request["env"]
        assert isinstance(env, dict)
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in env.items()})
        os.chdir(str(request["cwd"]))
        args = [str(a) for a in request["args"]]  # type: ignore[attr-defined]
        sys.argv = ["mlplane", *args]
        from mlplane.cli.main import main

        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


def serve() -> None:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd is written
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    running: dict[int, str] = {}  # pid -> request id
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ, "requests")
    selector.register(wake_r, selectors.EVENT_READ, "children")
    pending = b""
    _send({"ready": os.getpid()})
    while True:
        for key, _ in selector.select():
            if key.data == "children":
                os.read(wake_r, 4096)
                while running:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    _send({"id": running.pop(pid, ""), "exit": _exit_code(status)})
                continue
            chunk = os.read(0, 65536)
            if not chunk:  # the agent is gone: so are we (the children die with us)
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                request = json.loads(line)
                sys.stdout.flush()
                pid = os.fork()
                if pid == 0:
                    _child(request)
                running[pid] = str(request["id"])
                _send({"id": request["id"], "pid": pid})


def main() -> None:
    preload()
    serve()


if __name__ == "__main__":
    main()
