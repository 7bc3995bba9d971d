"""The local load balancer's data plane: its own process, apart from the agent (the control
plane), as Google's load balancers are apart from the Compute API (cf. Envoy and xDS).

The agent sends it whole, versioned configurations over a Unix socket in its state directory
(listeners with their URL maps and backend services, health checks and the replicas to probe);
the data plane swaps each in atomically, probes the replicas itself and gates their endpoints
on its own probes, and reports health transitions and per-backend-service load counters when
polled. It is started detached, so it outlives a crashed agent with its listeners still open;
the next agent adopts it (`dataplane.json` + the socket) instead of starting another.

Modules: `protocol` (the typed messages), `health` (probes, thresholds, the prober schedule),
`server` (the `DataPlane`: balancers, probers, poll), `process` and `__main__` (the process),
`files` (its files), `client` (the agent's side).
"""
