"""The data plane's listeners served by a supervised haproxy (`--proxy haproxy`, selected by
`[local] data_plane = "haproxy"`): `config` renders haproxy.cfg from the DataPlaneConfig's
listeners, `process` checks, starts, reloads and stops haproxy, `runtime` speaks its runtime
API, `plane` is what the DataPlane drives (docs/decisions/1105)."""
