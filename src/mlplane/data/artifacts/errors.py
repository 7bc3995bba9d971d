"""The artifact store's errors, in mlplane's taxonomy (GCS's 404 and 412 as mlplane errors)."""

from __future__ import annotations

from mlplane.errors import ConfigError, PermanentError


class InvalidUri(ConfigError):
    """A `gs://` URI that is malformed or would climb out of its bucket; names the URI."""

    def __init__(self, uri: str, message: str) -> None:
        super().__init__(repr(uri), "", message)
        self.uri = uri


class ObjectNotFound(PermanentError):
    """The object (or bucket) does not exist: GCS's 404."""

    def __init__(self, uri: str, detail: str = "no such object") -> None:
        self.uri = uri
        super().__init__(f"{uri}: {detail}")


class PreconditionFailed(PermanentError):
    """An `if_generation_match` precondition did not hold: GCS's 412. `current` is the object's
    generation at the time (0 when it did not exist)."""

    def __init__(self, uri: str, expected: int | None, current: int | None) -> None:
        self.uri = uri
        self.expected = expected
        self.current = current
        if expected is None:
            super().__init__(f"{uri}: precondition failed (HTTP 412); nothing was written")
            return
        want = "must not exist" if expected == 0 else f"must be at generation {expected}"
        if current is None:
            have = "its current generation is unknown"
        elif current == 0:
            have = "it does not exist"
        else:
            have = f"it is at generation {current}"
        super().__init__(
            f"{uri}: precondition failed (HTTP 412): if_generation_match={expected} "
            f"(the object {want}) but {have}; nothing was written"
        )


class CorruptObject(PermanentError):
    """Bytes read back do not match the object's recorded size or checksums."""
