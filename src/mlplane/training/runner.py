"""`python -m mlplane.training.runner [--no-delete] -- JOB ARGV...`: what a training VM runs.

It runs the job, then deletes its own instance through the Compute API with its own token from
the metadata server, whatever the job's outcome (success, failure, a crash, SIGTERM). This is
the document's "the Compute Engine instance will make an API call to shut itself down", done as
the VM's service account. Exits with the job's exit code.

Locally, the agent serves the Compute API at $CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE (the
variable gcloud honours); on GCP it is
https://compute.googleapis.com/compute/v1/. Stdlib only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

GCP_COMPUTE = "https://compute.googleapis.com/compute/v1/"


def say(line: str) -> None:
    print(f"mlplane-training: {line}", flush=True)


def metadata(path: str) -> str:
    host = os.environ.get("GCE_METADATA_HOST", "metadata.google.internal")
    req = urllib.request.Request(
        f"http://{host}/computeMetadata/v1/{path}", headers={"Metadata-Flavor": "Google"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.read().decode())


def delete_self() -> int:
    """DELETE this instance as its service account; returns the HTTP status (0: unreachable)."""
    try:
        name = metadata("instance/name")
        zone = metadata("instance/zone").rsplit("/", 1)[-1]
        project = metadata("project/project-id")
        token = json.loads(metadata("instance/service-accounts/default/token"))["access_token"]
    except (OSError, ValueError, KeyError) as exc:
        say(f"cannot read the metadata server: {exc}")
        return 0
    base = os.environ.get("CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE") or GCP_COMPUTE
    url = f"{base}projects/{project}/zones/{zone}/instances/{name}"
    req = urllib.request.Request(url, method="DELETE", headers={"Authorization": f"Bearer {token}"})
    say(f"deleting instance {name} as its service account")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        say(f"delete refused: HTTP {exc.code} {exc.read().decode(errors='replace')[:500]}")
        return int(exc.code)
    except OSError as exc:
        say(f"delete failed: {exc}")
        return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    delete = True
    if args[:1] == ["--no-delete"]:
        delete, args = False, args[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print(
            "usage: python -m mlplane.training.runner [--no-delete] -- JOB ARGV...", file=sys.stderr
        )
        return 2
    start = time.monotonic()
    job: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: object) -> None:
        if job is not None and job.poll() is None:
            job.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    code = 1
    try:
        say(f"starting job: {' '.join(args)}")
        job = subprocess.Popen(args)
        code = job.wait()
        say(f"job exited rc={code} after {time.monotonic() - start:.1f} s")
    except OSError as exc:
        say(f"job could not start: {exc}")
        code = 127
    finally:
        if delete:
            delete_self()
    return code


if __name__ == "__main__":
    sys.exit(main())
