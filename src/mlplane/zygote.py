"""A warm launcher: a Python process that has already imported what its workloads import, and
forks one child per request that becomes exactly what `python -m MODULE ARGS` would be.

The local agent keeps two: the build worker (`mlplane.cli.warm_worker`: `python -m mlplane ci
step ...`) and the replica launcher (`mlplane.serving.warm`: `python -m mlplane.serving ...`).
Starting an interpreter and importing for each of those costs more than the work that follows
(decisions 0016 and 0019). The child gets the request's environment (replacing the worker's),
working directory, its own session and process group, its output appended to a log file, stdin
from /dev/null, signals reset and death with its parent (PR_SET_PDEATHSIG); then it runs MODULE
as `__main__` with `runpy`, as `python -m` does. Nothing is shared back.

Protocol (JSON lines; the agent is the only client, over this process's stdin and stdout):

    <- {"ready": PID}
    -> {"id": ID, "module": MODULE, "args": [...], "env": {...}, "cwd": DIR, "log": FILE}
    <- {"id": ID, "pid": PID}              the child runs
    <- {"id": ID, "exit": CODE}            the child ended (negative: killed by that signal)

The launcher exits when its stdin closes (the agent stopped or died) and has no thread, so
forking it is safe. Only the standard library is imported here.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import json
import os
import runpy
import selectors
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import Any

_PR_SET_PDEATHSIG = 1


def _send(message: dict[str, object]) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def die_with(parent: int) -> None:
    """In a forked child of `parent`: ask for SIGKILL when it dies (PR_SET_PDEATHSIG), and
    leave at once if it already has (between the fork and the request)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _become(request: dict[str, Any], parent: int) -> None:
    """In the forked child: become the workload's process (session, signals, files)."""
    os.setsid()
    die_with(parent)
    signal.set_wakeup_fd(-1)
    # as a new interpreter has them (the launcher changed SIGCHLD and SIGTERM)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    log = os.open(str(request["log"]), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.closerange(3, 1024)  # the launcher's pipes and selector are not the workload's
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})
    os.chdir(str(request["cwd"]))


def run_as_main(module: str, args: Sequence[str]) -> int:
    """Run `module` in this process as `python -m MODULE ARGS` runs it; its exit status (0 when
    it returns, SystemExit's code otherwise; any other exception propagates). What runs as
    __main__ is not imported yet, as under `python -m` (a preload may have imported it for its
    imports)."""
    sys.argv = [module, *(str(a) for a in args)]
    for name in (module, module + ".__main__"):
        if name in sys.modules and not hasattr(sys.modules[name], "__path__"):
            del sys.modules[name]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    return 0


def _child(request: dict[str, Any], parent: int) -> None:
    """In the forked child: run the request's module as `__main__`; never return."""
    code = 1
    try:
        _become(request, parent)
        code = run_as_main(str(request["module"]), request["args"])
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()  # as the interpreter does on its way out
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """Answer requests on stdin until it closes (call after importing what workloads need)."""
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
    launcher = os.getpid()
    # What was imported stays put: the collector need not visit it in the children, whose
    # visits would copy every page it lives on (copy-on-write after fork).
    gc.collect()
    gc.freeze()
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
                    _send({"id": running.pop(pid, ""), "exit": os.waitstatus_to_exitcode(status)})
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
                    _child(request, launcher)
                running[pid] = str(request["id"])
                _send({"id": request["id"], "pid": pid})
