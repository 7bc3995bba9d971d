"""The foundation as one re-runnable gcloud script (`mlplane export --format gcloud`).

In dependency order: APIs, service accounts, custom roles, the resources bindings are scoped to,
the firewall rule and the load-balancer stack, the Endpoints service (first deployed with the
global address as its target, then enabled), the bindings, the Cloud Build triggers, the
auxiliary instances and Cloud Run services. Each resource is described first and created only
when absent (describe-or-create); lists are read once. On an empty project it runs to the end;
a second run changes nothing. A resource the team says already exists is only checked.
"""

from __future__ import annotations

import json
import shlex

from mlplane.iam.export.foundation import ADDRESS_PLACEHOLDER, Foundation, NamedResource
from mlplane.iam.export.gcloud import (
    accounts_section,
    bindings_section,
    prelude,
    roles_section,
)
from mlplane.model.workload import STARTUP_SCRIPT_KEY, container_metadata

q = shlex.quote
COS = "--image-family=cos-stable --image-project=cos-cloud"


def _heredoc(path: str, text: str) -> str:
    marker = "MLPLANE_EOF"
    while marker in text:
        marker += "_"
    return f"cat > {path} <<'{marker}'\n{text}\n{marker}"


def _ensure(describe: str, create: str) -> str:
    return f"{describe} --format=none >/dev/null 2>&1 \\\n  || {create} --format=none"


def _apis(f: Foundation) -> list[str]:
    apis = " ".join(q(a) for a in f.apis)
    return [
        "\n# --- APIs (enabled when not yet)",
        'ENABLED=$(gcloud services list --enabled --project "$PROJECT" '
        "--format='value(config.name)')",
        "TO_ENABLE=()",
        f"for api in {apis}; do",
        '  have "$api" "$ENABLED" || TO_ENABLE+=("$api")',
        "done",
        "if [ ${#TO_ENABLE[@]} -gt 0 ]; then",
        '  gcloud services enable "${TO_ENABLE[@]}" --project "$PROJECT"',
        "fi",
    ]


def _named(r: NamedResource) -> str:
    p = '--project "$PROJECT"'
    describe, create = {
        "bucket": (
            f"gcloud storage buckets describe {q('gs://' + r.name)}",
            f"gcloud storage buckets create {q('gs://' + r.name)} {p} --location={q(r.location)}"
            " --uniform-bucket-level-access --public-access-prevention",
        ),
        "secret": (
            f"gcloud secrets describe {q(r.name)} {p}",
            f"gcloud secrets create {q(r.name)} {p} --replication-policy=automatic",
        ),
        "repository": (
            f"gcloud artifacts repositories describe {q(r.name)} --location={q(r.location)} {p}",
            f"gcloud artifacts repositories create {q(r.name)} --location={q(r.location)} {p}"
            " --repository-format=docker --description='mlplane images'",
        ),
    }[r.kind]
    if r.existing:
        return _must_exist(describe, f"{r.kind} {r.name}")
    return _ensure(describe, create)


def _must_exist(describe: str, what: str) -> str:
    message = q(f"error: {what} is declared existing ([resources] existing) but does not exist")
    return f"{describe} --format=none >/dev/null 2>&1 \\\n  || {{ echo {message} >&2; exit 1; }}"


def _resources(f: Foundation) -> list[str]:
    out = ["\n# --- what the bindings are scoped to: bucket, secrets, image repository"]
    out += [_named(r) for r in f.resources if r.kind != "endpointsService"]
    return out


def _network(f: Foundation) -> list[str]:
    lb, fw = f.load_balancer, f.firewall
    g = '--global --project "$PROJECT"'
    body = json.dumps(lb.url_map_body, indent=2)
    return [
        "\n# --- the firewall rule that admits Google's health checkers to the serving port",
        _ensure(
            f'gcloud compute firewall-rules describe {q(fw.name)} --project "$PROJECT"',
            f'gcloud compute firewall-rules create {q(fw.name)} --project "$PROJECT" '
            f"--network={q(fw.network)} \\\n    --direction=INGRESS --allow=tcp:{fw.port} "
            f"--source-ranges={q(','.join(fw.source_ranges))} "
            f"--target-tags={q(','.join(fw.target_tags))}",
        ),
        "\n# --- the load balancer: global address, default backend, URL map, proxy, rule",
        _ensure(
            f"gcloud compute addresses describe {q(lb.address)} {g}",
            f"gcloud compute addresses create {q(lb.address)} {g}",
        ),
        _ensure(
            f"gcloud compute backend-services describe {q(lb.default_backend)} {g}",
            f"gcloud compute backend-services create {q(lb.default_backend)} {g} "
            f"--load-balancing-scheme={lb.scheme} --protocol=HTTP",
        ),
        "if ! gcloud compute url-maps describe " + q(lb.url_map) + f" {g} --format=none "
        ">/dev/null 2>&1; then",
        _heredoc('"$WORK/url-map.json"', body),
        f'  gcloud compute url-maps import {q(lb.url_map)} {g} --source="$WORK/url-map.json" '
        "--format=none",
        "fi",
        _ensure(
            f"gcloud compute target-http-proxies describe {q(lb.proxy)} {g}",
            f"gcloud compute target-http-proxies create {q(lb.proxy)} {g} "
            f"--url-map={q(lb.url_map)}",
        ),
        _ensure(
            f"gcloud compute forwarding-rules describe {q(lb.forwarding_rule)} {g}",
            f"gcloud compute forwarding-rules create {q(lb.forwarding_rule)} {g} \\\n"
            f"    --target-http-proxy={q(lb.proxy)} --address={q(lb.address)} "
            f"--ports={lb.port_range} --load-balancing-scheme={lb.scheme}",
        ),
    ]


def _endpoints(f: Foundation) -> list[str]:
    out = ["\n# --- Endpoints: first config targets the global address; then enabled"]
    lb = f.load_balancer
    for r in f.of_kind("endpointsService"):
        if r.existing:
            out.append(
                _must_exist(f"gcloud endpoints services describe {q(r.name)}", f"{r.kind} {r.name}")
            )
            continue
        out += [
            f"if ! gcloud endpoints services describe {q(r.name)} --format=none "
            ">/dev/null 2>&1; then",
            f"  ADDRESS=$(gcloud compute addresses describe {q(lb.address)} --global "
            "--project \"$PROJECT\" --format='value(address)')",
            _heredoc('"$WORK/openapi.in.json"', f.openapi_text(r.name)),
            f'  sed "s/{ADDRESS_PLACEHOLDER}/$ADDRESS/" "$WORK/openapi.in.json" > '
            '"$WORK/openapi.json"',
            '  gcloud endpoints services deploy "$WORK/openapi.json" --project "$PROJECT" '
            "--format=none",
            "fi",
            f'have {q(r.name)} "$ENABLED" || gcloud services enable {q(r.name)} '
            '--project "$PROJECT"',
        ]
    return out


# `manual` for manual triggers, `github` for push triggers on a GitHub repository; each reads
# the whole BuildTrigger (build steps, service account, approval) from --trigger-config.
_TRIGGER_KIND = {"manual": "manual", "push": "github"}


def _triggers(f: Foundation) -> list[str]:
    out = [
        "\n# --- Cloud Build triggers (created when absent; the build is fixed in the trigger)",
        "TRIGGERS=$(gcloud builds triggers list --project \"$PROJECT\" --format='value(name)')",
    ]
    for t in f.triggers:
        path = f'"$WORK/trigger-{t.name}.json"'
        out += [
            f'if ! have {q(t.name)} "$TRIGGERS"; then',
            _heredoc(path, json.dumps(t.body, indent=2)),
            f"  gcloud builds triggers create {_TRIGGER_KIND[t.event]} --trigger-config={path} "
            '--project "$PROJECT" --format=none',
            "fi",
        ]
    return out


def _auxiliary(f: Foundation) -> list[str]:
    if not f.instances and not f.run_services:
        return []
    out = ["\n# --- auxiliary services (run as the aux-runtime identity)"]
    for i in f.instances:
        items = container_metadata(i.image)
        script = f'"$WORK/startup-{i.name}.sh"'
        out.append(_heredoc(script, items.pop(STARTUP_SCRIPT_KEY).rstrip("\n")))
        metadata = ",".join(f"{k}={v}" for k, v in items.items())
        out.append(
            _ensure(
                f"gcloud compute instances describe {q(i.name)} --zone={q(i.zone)} "
                '--project "$PROJECT"',
                f"gcloud compute instances create {q(i.name)} --zone={q(i.zone)} "
                f'--project "$PROJECT" \\\n    --machine-type={q(i.machine_type)} {COS} '
                f"--service-account={q(i.service_account)} --scopes=cloud-platform \\\n"
                f"    --tags=mlplane-aux --metadata={q(metadata)} \\\n"
                f"    --metadata-from-file=startup-script={script}",
            )
        )
    for r in f.run_services:
        out.append(
            _ensure(
                f"gcloud run services describe {q(r.name)} --region={q(r.region)} "
                '--project "$PROJECT"',
                f'gcloud run deploy {q(r.name)} --region={q(r.region)} --project "$PROJECT" '
                f"\\\n    --image={q(r.image)} --service-account={q(r.service_account)} "
                "--no-allow-unauthenticated --ingress=internal-and-cloud-load-balancing",
            )
        )
    return out


def render_foundation_gcloud(f: Foundation) -> str:
    head = prelude(f.project).replace("re-run `mlplane iam export`", "re-run `mlplane export`")
    sections = (
        [head],
        _apis(f),
        accounts_section(f.iam),
        roles_section(f.iam),
        _resources(f),
        _network(f),
        _endpoints(f),
        bindings_section(f.iam),
        _triggers(f),
        _auxiliary(f),
        ['\necho "mlplane export: $PROJECT is ready" >&2'],
    )
    return "\n".join(line for section in sections for line in section) + "\n"
