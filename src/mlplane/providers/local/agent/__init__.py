"""The local agent: a per-project daemon that supervises instance and replica processes, hosts
the load balancers, runs autoscalers and health checks, serves each instance's metadata
endpoint, and answers the local provider's API on 127.0.0.1. Start and stop it with
`mlplane.providers.local.control` (the CLI's `mlplane up` / `down`)."""
