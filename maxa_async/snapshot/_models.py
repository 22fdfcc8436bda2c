"""What the snapshot store reports: per-terminology metadata, pull and sync summaries."""

from __future__ import annotations

import datetime as dt
import time

import attrs

from ..jalali import JalaliDateTime

__all__ = ["PullSummary", "SnapshotInfo", "SyncSummary"]


@attrs.frozen
class SnapshotInfo:
    """One terminology's snapshot: which version, how many terms, when and from where.

    ``pulled_at`` is when the version was fetched whole; ``synced_at`` when it was last
    brought up to date (a pull counts). Both are aware UTC datetimes, taken when the
    request was *sent* (so a term created while the answer was in flight is found by the
    next sync); ``*_jalali`` give them as Tehran wall-clock Jalali date-times, which is
    what SearchTerminology's ``FromDate`` takes.
    """

    key: str
    """The terminology id stripped and lower-cased: how the store (and MAXA) matches it."""
    terminology_id: str
    """The id as the gateway spells it (e.g. ``eRx``)."""
    version: str
    version_id: int | None
    term_count: int
    base_url: str
    pulled_at: dt.datetime
    synced_at: dt.datetime

    @property
    def pulled_at_jalali(self) -> JalaliDateTime:
        return JalaliDateTime.from_datetime(self.pulled_at)

    @property
    def synced_at_jalali(self) -> JalaliDateTime:
        return JalaliDateTime.from_datetime(self.synced_at)

    def age(self, now: float | None = None) -> float:
        """Seconds since the last sync (or pull)."""
        return (time.time() if now is None else now) - self.synced_at.timestamp()


@attrs.frozen
class PullSummary:
    """What :meth:`SnapshotStore.pull` did.

    ``added``/``changed``/``removed``/``unchanged`` compare the new snapshot with the one
    it replaced, code by code (``changed``: same code, different value); for a first pull
    every term is ``added``. ``skipped`` counts terms the gateway sent with a blank code.
    ``seconds`` is the whole pull; ``fetch_seconds`` the two gateway calls.
    """

    terminology_id: str
    version: str
    version_id: int | None
    previous_version: str | None
    terms: int
    added: int
    changed: int
    removed: int
    unchanged: int
    skipped: int
    seconds: float
    fetch_seconds: float


@attrs.frozen
class SyncSummary:
    """What :meth:`SnapshotStore.sync` did.

    ``repulled`` is True when TerminologyVersions named another latest version and the
    whole version was pulled again (``since`` is then None and ``removed`` counts codes
    the new version dropped). Otherwise ``since`` is the ``FromDate`` sent to
    SearchTerminology, ``received`` how many terms it returned, and each of them was
    ``added`` (new code), ``changed`` (new value for a known code) or ``unchanged``
    (already in the snapshot: terms created within the safety margin are seen twice).
    SearchTerminology reports creations only, so a code deleted within a version is not
    noticed until the next version is pulled (``removed`` is 0).
    """

    terminology_id: str
    version: str
    previous_version: str
    repulled: bool
    since: JalaliDateTime | None
    received: int
    added: int
    changed: int
    unchanged: int
    removed: int
    terms: int
    seconds: float
