"""Errors of the snapshot store, all below :class:`maxa_async.MaxaError`.

::

    MaxaError
    └── SnapshotError               the snapshot file cannot be used as asked
        ├── NoSnapshotError         (also a LookupError) no snapshot of that terminology
        ├── SnapshotSchemaError     the file was written by a newer maxa_async
        └── SnapshotCorruptError    not a MAXA snapshot, or a damaged SQLite file
"""

from __future__ import annotations

from ..errors import MaxaError

__all__ = ["NoSnapshotError", "SnapshotCorruptError", "SnapshotError", "SnapshotSchemaError"]


class SnapshotError(MaxaError):
    """The snapshot file cannot be used as asked. ``path`` names the file."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class NoSnapshotError(SnapshotError, LookupError):
    """The store holds no snapshot of this terminology: pull it first."""

    def __init__(self, terminology_id: str, *, path: str | None = None) -> None:
        where = f" in {path}" if path else ""
        super().__init__(
            f"no snapshot of terminology {terminology_id!r}{where}; pull it first "
            f"(store.pull(client, {terminology_id!r}) or `maxa snapshot pull {terminology_id}`)",
            path=path,
        )
        self.terminology_id = terminology_id


class SnapshotSchemaError(SnapshotError):
    """The file's schema is newer than this maxa_async reads (or not one it knows)."""


class SnapshotCorruptError(SnapshotError):
    """The file is not a MAXA snapshot, or SQLite found it damaged: also a file holding a
    view, a trigger or any other object the store never creates (refused before any query
    runs on it), and an empty file the store may not create a snapshot in."""
