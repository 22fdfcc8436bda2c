"""What answers the FHIR operations: the online client, a snapshot, or the hybrid."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import attrs

from ..client import MaxaClient, ValidationOutcome
from ..errors import NotFoundError
from ..models import CodedText
from ..snapshot import HybridValidator, NoSnapshotError, SnapshotStore, TerminologyIndex
from ._outcome import FhirOperationError

__all__ = [
    "Backend",
    "CodeAnswer",
    "HybridBackend",
    "OfflineBackend",
    "OnlineBackend",
    "backend_for",
]


@attrs.frozen
class CodeAnswer:
    """A code's display (None: the code is unknown) and the version that answered, if
    known."""

    display: str | None
    version: str | None
    #: the terminology id as MAXA spells it, when the answer came from a snapshot
    name: str | None = None


class Backend(Protocol):
    """What the FHIR facade asks of a validator."""

    #: ``online``, ``offline`` or ``hybrid``
    mode: str

    async def display(self, terminology_id: str, code: str, version: str | None) -> CodeAnswer:
        """The display of a code (at ``version``, or the latest); raises
        :class:`NotFoundError` for a terminology (or version) it knows to be unknown."""
        ...

    async def validate(self, item: CodedText) -> bool:
        """ValidateCts against the latest version."""
        ...

    def validate_many(self, items: Sequence[CodedText]) -> AsyncIterator[ValidationOutcome]:
        """The bulk engine: one outcome per item, in order."""
        ...

    async def index(self, terminology_id: str) -> TerminologyIndex:
        """A snapshot's in-memory index ($expand); raises where there is none."""
        ...

    async def code_systems(self) -> list[tuple[str, str | None]]:
        """(terminology id, version) of the terminologies known to be answered."""
        ...


def _version_mismatch(index: TerminologyIndex, version: str) -> NotFoundError:
    return NotFoundError(
        f"the snapshot holds version {index.version!r} of {index.terminology_id!r}, "
        f"not {version!r}",
        status=404,
    )


class OnlineBackend:
    """Every answer from the gateway, through a :class:`MaxaClient`."""

    mode = "online"

    def __init__(self, client: MaxaClient) -> None:
        self.client = client

    async def display(self, terminology_id: str, code: str, version: str | None) -> CodeAnswer:
        # The gateway answers 404 alike for an unknown code and an unknown terminology:
        # online, both read as an unknown code.
        try:
            if version is None:
                value = await self.client.terminology(terminology_id, code)
            else:
                value = await self.client.terminology_value_by_version(
                    terminology_id, code, version=version
                )
        except NotFoundError:
            return CodeAnswer(None, version)
        return CodeAnswer(value, version)

    async def validate(self, item: CodedText) -> bool:
        return await self.client.validate_cts(item)

    def validate_many(self, items: Sequence[CodedText]) -> AsyncIterator[ValidationOutcome]:
        return self.client.validate_many(items)

    async def index(self, terminology_id: str) -> TerminologyIndex:
        raise FhirOperationError(
            "not-supported",
            400,
            "$expand reads a snapshot; this server runs online "
            "(serve with --offline or --hybrid, or give FhirTerminology a SnapshotStore)",
        )

    async def code_systems(self) -> list[tuple[str, str | None]]:
        return []


class OfflineBackend:
    """Every answer from a :class:`SnapshotStore`: no network."""

    mode = "offline"

    def __init__(self, store: SnapshotStore) -> None:
        self.store = store

    async def display(self, terminology_id: str, code: str, version: str | None) -> CodeAnswer:
        index = await self.store.index(terminology_id)
        if version is not None and version != index.version:
            raise _version_mismatch(index, version)
        return CodeAnswer(index.lookup(code), index.version, index.terminology_id)

    async def validate(self, item: CodedText) -> bool:
        return await self.store.validate(item)

    def validate_many(self, items: Sequence[CodedText]) -> AsyncIterator[ValidationOutcome]:
        return self.store.validate_many(items)

    async def index(self, terminology_id: str) -> TerminologyIndex:
        return await self.store.index(terminology_id)

    async def code_systems(self) -> list[tuple[str, str | None]]:
        return [(info.terminology_id, info.version) for info in await self.store.snapshots()]


class HybridBackend:
    """The snapshot first, the gateway for what it lacks (a :class:`HybridValidator`)."""

    mode = "hybrid"

    def __init__(self, hybrid: HybridValidator, client: MaxaClient) -> None:
        self.hybrid = hybrid
        self.offline = OfflineBackend(hybrid.store)
        self.online = OnlineBackend(client)

    async def display(self, terminology_id: str, code: str, version: str | None) -> CodeAnswer:
        try:
            answer = await self.offline.display(terminology_id, code, version)
        except (NotFoundError, NoSnapshotError):  # never pulled, or another version
            return await self.online.display(terminology_id, code, version)
        if answer.display is None:  # perhaps newer than the snapshot
            online = await self.online.display(terminology_id, code, version)
            # the gateway's latest may be newer than the snapshot's: no version claimed
            return CodeAnswer(online.display, version, answer.name)
        return answer

    async def validate(self, item: CodedText) -> bool:
        return await self.hybrid.validate(item)

    def validate_many(self, items: Sequence[CodedText]) -> AsyncIterator[ValidationOutcome]:
        return self.hybrid.validate_many(items)

    async def index(self, terminology_id: str) -> TerminologyIndex:
        return await self.offline.index(terminology_id)

    async def code_systems(self) -> list[tuple[str, str | None]]:
        return await self.offline.code_systems()


def backend_for(validator: object) -> Backend:
    """The backend of a :class:`MaxaClient`, a :class:`SnapshotStore` or a
    :class:`HybridValidator` (whose client must be a MaxaClient)."""
    if isinstance(validator, MaxaClient):
        return OnlineBackend(validator)
    if isinstance(validator, SnapshotStore):
        return OfflineBackend(validator)
    if isinstance(validator, HybridValidator):
        if not isinstance(validator.client, MaxaClient):
            raise TypeError("the HybridValidator's client must be a maxa.MaxaClient")
        return HybridBackend(validator, validator.client)
    if all(
        hasattr(validator, name)
        for name in ("mode", "display", "validate", "validate_many", "index", "code_systems")
    ):
        return validator  # type: ignore[return-value]  # a Backend of the caller's own
    raise TypeError(
        "expected a MaxaClient, a SnapshotStore, a HybridValidator or a Backend, "
        f"got {type(validator).__name__}"
    )
