"""The emulator's own process view (`GET /_mlplane/processes`), typed on both sides.

Everything else the agent says is Google's own JSON (`mlplane.apis`); this is the one shape that
is the local machine's, not Google's: which process runs which instance, on which port.
"""

from __future__ import annotations

from mlplane.providers.replica_view import ReplicaView

__all__ = ["ReplicaView"]
