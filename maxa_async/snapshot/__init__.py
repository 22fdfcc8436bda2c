"""Offline snapshots: a terminology version in one local SQLite file, kept current,
answering lookups and validations from memory.

::

    from maxa_async.snapshot import SnapshotStore, HybridValidator

    async with maxa.MaxaClient(creds) as client, SnapshotStore.open("maxa.db") as store:
        await store.pull(client, "eRx")                 # TerminologyVersions + the IsLast version
        await store.sync(client, "eRx")                 # later: SearchTerminology since last sync
        value = await store.lookup("eRx", "60002")      # str | None, no network
        ok = await store.validate(maxa.CodedText(value, "eRx", "60002"))
        async for outcome in store.validate_many(items):   # ValidationOutcome, input order
            ...
        hybrid = HybridValidator(store, client)        # the gateway only on a miss
        async for outcome in hybrid.validate_many(items):
            ...
        print(hybrid.stats)

Comparison rules are the gateway's (ValidateCts against its latest version): terminology
ids without regard to case after stripping surrounding white space, codes exactly after
stripping, values equal once both are stripped of surrounding white space
(``str.strip()``) and exact otherwise. Bad input raises (or, in bulk, yields)
:class:`maxa_async.InvalidInputError` naming the field, as the client's own checks do.

Errors::

    MaxaError
    └── SnapshotError               the file cannot be used as asked (``path``)
        ├── NoSnapshotError         (also LookupError) that terminology was never pulled
        ├── SnapshotSchemaError     written by a newer maxa_async (schema_version)
        └── SnapshotCorruptError    not a MAXA snapshot, or a damaged SQLite file
"""

from __future__ import annotations

from ._db import SCHEMA_VERSION
from ._errors import NoSnapshotError, SnapshotCorruptError, SnapshotError, SnapshotSchemaError
from ._hybrid import HybridStats, HybridValidator, ValidatingClient
from ._index import TerminologyIndex
from ._models import PullSummary, SnapshotInfo, SyncSummary
from ._store import DEFAULT_SYNC_MARGIN, LATEST, SnapshotStore, TermSource
from ._text import normalize_text

__all__ = [
    "DEFAULT_SYNC_MARGIN",
    "LATEST",
    "SCHEMA_VERSION",
    "HybridStats",
    "HybridValidator",
    "NoSnapshotError",
    "PullSummary",
    "SnapshotCorruptError",
    "SnapshotError",
    "SnapshotInfo",
    "SnapshotSchemaError",
    "SnapshotStore",
    "SyncSummary",
    "TermSource",
    "TerminologyIndex",
    "ValidatingClient",
    "normalize_text",
]
