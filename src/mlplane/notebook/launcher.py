"""`python -m mlplane.notebook.launcher`: what a notebook VM runs.

Starts JupyterLab on 127.0.0.1:$PORT with the token read from $MLPLANE_NOTEBOOK_TOKEN_FILE and
written into Jupyter's own config file (mode 0600; never on a command line or in the instance's
metadata), Jupyter's state isolated under
$MLPLANE_NOTEBOOK_DIR, and an idle shutdown after $MLPLANE_NOTEBOOK_IDLE_SEC seconds with no
activity (kernels idle as long are culled first). As root, Jupyter needs --allow-root.
Stdlib only; JupyterLab comes from the `notebook` extra.
"""

from __future__ import annotations

import os
import sys


def write_config(config_dir: str, token_file: str) -> None:
    """Jupyter reads `jupyter_server_config.json` from JUPYTER_CONFIG_DIR."""
    import json

    with open(token_file) as f:
        token = f.read().strip()
    os.makedirs(config_dir, mode=0o700, exist_ok=True)
    path = os.path.join(config_dir, "jupyter_server_config.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"IdentityProvider": {"token": token}}, f)


def argv(env: dict[str, str]) -> list[str]:
    port = env["PORT"]
    idle = env.get("MLPLANE_NOTEBOOK_IDLE_SEC", str(180 * 60))
    root = env.get("MLPLANE_NOTEBOOK_DIR", os.getcwd())
    out = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--ServerApp.root_dir={root}",
        f"--ServerApp.shutdown_no_activity_timeout={idle}",
        f"--MappingKernelManager.cull_idle_timeout={idle}",
        "--MappingKernelManager.cull_interval=60",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        out.append("--allow-root")
    return out


def main() -> int:
    env = dict(os.environ)
    state = os.path.join(env.get("MLPLANE_NOTEBOOK_DIR", os.getcwd()), ".jupyter-state")
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data")):
        os.environ[var] = os.path.join(state, sub)
    os.environ["JUPYTER_RUNTIME_DIR"] = os.path.join(state, "runtime")
    try:
        write_config(os.environ["JUPYTER_CONFIG_DIR"], env["MLPLANE_NOTEBOOK_TOKEN_FILE"])
        command = argv(env)
    except (KeyError, OSError) as exc:
        print(f"mlplane-notebook: cannot start: {exc}", file=sys.stderr)
        return 2
    # os.execv replaces the launcher, so the agent's signals reach Jupyter directly.
    os.execv(sys.executable, command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
