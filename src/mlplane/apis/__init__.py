"""Google's REST APIs as data: the one seam between mlplane and any cloud.

A trimmed copy of Google's discovery documents (paths, parameters, schemas) ships in
`documents/` (see its SOURCE.md and scripts/refresh_discovery.py). The client in
`providers/gcp` builds its requests from it; the local agent routes and validates the requests
it serves with it; Google's own JSON error and operation shapes live here too, so both sides of
the seam agree on the wire by construction. Stdlib only; nothing here does network I/O.
"""
