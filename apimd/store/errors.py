"""The store's domain exceptions: each message says what is wrong, where, and what to do."""

from __future__ import annotations

from apimd.model.kinds import ResourceKind


class StoreError(Exception):
    """Base of the store's errors."""


class StoreUnavailable(StoreError):
    """The database server does not answer (gone, cut off, or out of connections)."""


class NewerSchemaError(StoreError):
    """The database was written by a newer apimd than this one."""

    def __init__(self, db_name: str, found: int, known: int) -> None:
        super().__init__(
            f"{db_name} was written by a newer apimd (schema {found}, this apimd knows {known}); "
            "upgrade apimd"
        )
        self.found = found
        self.known = known


class SecretKeyError(StoreError):
    """The secret key is missing, malformed, or not the one the database was written with."""


class StoreInUse(StoreError):
    """Another process owns the database (a daemon, or `apimd run --db`)."""

    def __init__(self, db: str, description: str, pid: int | None) -> None:
        who = f"{description} (pid {pid})" if pid else description
        # What else to do is the caller's to say: the daemon, `run --db` and `migrate` differ.
        super().__init__(f"{db} is in use by {who}; stop it first")
        self.description = description
        self.pid = pid


class CorruptRecord(StoreError):
    """A stored row could not be decrypted or parsed."""


class ResourceNotFound(StoreError):
    """No resource of that kind has that name."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"no {ResourceKind(kind).singular} named {name!r}")
        self.kind = kind
        self.name = name


class ResourceInUse(StoreError):
    """A resource cannot be deleted while others refer to it."""

    def __init__(self, kind: str, name: str, referrers: list[str]) -> None:
        super().__init__(
            f"{ResourceKind(kind).singular} {name!r} is used by {', '.join(referrers)}; "
            "change or delete those first"
        )
        self.kind = kind
        self.name = name
        self.referrers = referrers


class InvalidCursor(StoreError):
    """A pagination cursor this store did not hand out."""

    def __init__(self) -> None:
        super().__init__("invalid cursor: pass the next_cursor of a previous page unchanged")
