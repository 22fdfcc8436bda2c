"""A fake DITAS/MAXA gateway: a real aiohttp server that speaks the guide's wire
protocol and misbehaves on request.

Written from the ministry's guide (``spec/MAXA_API.md``), not from this
library's client: its wire JSON is literal, so a mistake in the client's
converter cannot be mirrored and hidden by the fake.

Usage::

    from maxa_async.testing import FakeGateway, GatewayConfig, Term

    async with FakeGateway(GatewayConfig(rps_limit=50, token_ttl=5)) as gw:
        client = MaxaClient(gw.credentials, base_url=gw.base_url)
        ...
        gw.config.error_rate = 0.1            # knobs change while it runs
        gw.add_terms("eRx", [Term("99999", "NEW DRUG 5 mg TABLET ORAL")])
        assert gw.stats.password_grants == 1

As a process: ``python -m maxa_async.testing --port 8080 --rps-limit 100``
prints one JSON line (``base_url``, ``client_id``, ``client_secret``,
``username``, ``password``, ``pid``) when ready and serves until SIGINT/SIGTERM.
Out of process, ``GET /__stats``, ``POST /__stats/reset``, ``GET``/``POST
/__config`` (a JSON object of knobs), ``POST /__revoke`` and ``POST /__terms``
(``{"terminology", "version", "terms": [{"code", "value", "created"}]}``) do
what the Python attributes do; they need no credentials and are never faulted.
As a pytest plugin: ``pytest_plugins = ["maxa_async.testing.pytest_plugin"]``
gives the ``maxa_gateway`` and ``maxa_gateway_factory`` fixtures.

Default credentials (``DEFAULT_*``, overridable in :class:`GatewayConfig`):
client id ``maxa-test-client``, secret ``maxa-test-secret``, user
``maxa-test-user``, password ``maxa-test-password``, pid ``maxa-test-pid``.

Behaviour (where the guide is silent, the choice is marked *fake*):

- ``POST /oauth/token``: Basic client auth, form body, ``password`` and
  ``refresh_token`` grants (parameters in the query string are ignored, *fake*).
  Success ``{"access_token", "token_type": "bearer", "refresh_token",
  "expires_in": ceil(remaining seconds), "scope": "trust read write"}``. Bad
  user, password or refresh token: HTTP 400 ``{"error": "invalid_grant",
  "error_description": "Bad credentials"}``; missing or wrong client: 401
  ``{"error": "unauthorized", ...}``; missing or unknown ``grant_type``: 400
  ``invalid_request``/``unsupported_grant_type``; a method other than POST: 405
  (Spring style). A refresh keeps the refresh token unless
  ``rotate_refresh_token``; it revokes the previous access token only with
  ``refresh_invalidates_old``.
- Operations at ``/api/client/apim/v1/maksaservice/gwmaksa/<Operation>``;
  Terminology is GET with a JSON body, the others POST. Checks, in order:
  ``blocked_ip`` (403), latency, drop, HTML page, bearer token and ``pid``
  header, ``revoke_every``, ``permanent_429``, the limiters (concurrency cap,
  rate limiter, quota, in that order), ``error_rate``, then the request itself.
- A missing, unknown, expired or revoked bearer token, and a missing or wrong
  ``pid`` header (*fake*), answer HTTP 401 ``{"status": 0, "code": 401, "msg": "",
  "violations": []}``.
- A wrong HTTP method (e.g. POST to Terminology, *fake*), a Content-Type other
  than ``application/json``, a body that is not a JSON object, a missing,
  non-string or blank id/code/version, a ``DoCodedText`` that is not an object,
  or a bad ``FromDate`` answer HTTP 400 ``{"status": {"statusCode": 400,
  "message": "Bad request."}}``. Body keys are matched exactly as the guide
  spells them (the real service may be laxer). ``FromDate`` needs all six
  integer fields, in range for the Jalali calendar (day within the month,
  Esfand 30 only in leap years, hour 0-23, minute and second 0-59);
  ``iSOStringField`` is optional and ignored.
- Terminology ids are matched without regard to case after stripping white
  space; codes and versions exactly after stripping. Terminology and
  ValidateCts use the latest (IsLast) version. ValidateCts answers ``"true"``
  iff the code exists there with exactly that value (both stripped), ``"false"``
  otherwise, and inner 404 for an unknown terminology. Values come JSON-encoded
  inside strings (``"data": "\\"اسلام\\""``).
- Not found is HTTP 200 with inner 404. An empty list (SearchTerminology or
  CtsTerminologies finding nothing since the date) is inner 404 too unless
  ``empty_as_not_found=False`` (*fake*; the guide's failure samples are 404s).
  SearchTerminology returns the latest version's terms created at or after
  ``FromDate`` (Tehran time), sorted by code; CtsTerminologies the
  terminologies created at or after it.
- Rate limit (*fake*: DITAS documents none, so the shapes real gateways use are
  all on offer): ``rps_limit`` is the rate R and ``rate_limiter`` its shape.
  ``"fixed"`` (default): windows of ``rate_window`` seconds (default 1) aligned
  to the wall clock, ``max(1, floor(R * rate_window))`` requests each;
  ``"sliding-log"``: that many in any trailing ``rate_window``;
  ``"sliding-counter"``: Kong's and Cloudflare's estimate (the previous aligned
  window's count weighted by its part still inside the trailing window, plus
  the current count, this request included, at most the limit);
  ``"token-bucket"``: ``rate_burst`` tokens (default R) refilled at R/s, one per
  request (Spring, Envoy, AWS); ``"leaky-bucket"``: a request passes only
  ``1/R`` s or more after the last one that passed (nginx ``limit_req`` without
  ``burst``). Beyond it: HTTP 429 ``"Too many requests or Access denied!"``
  with ``Retry-After`` (the exact wait rounded up to whole seconds, at least 1;
  an IMF-fixdate of that moment with ``retry_after_format="http-date"``)
  unless ``retry_after=False``. ``rate_nodes=n``: n gateway nodes behind a
  balancer that deals each request to one at random, each node limiting its
  own share (R/n, a burst of ``rate_burst``/n) of what it is dealt
  (:class:`Balanced`): refusals come while the client sends below R.
- ``quota`` requests per ``quota_period`` seconds (default a day), the period
  starting at the first request: then 429 with ``Retry-After`` to the period's
  end. ``concurrency_limit``: a request holds a place from its arrival
  (latency included) to its answer; one that finds all taken is answered
  ``concurrency_status`` (429 or 503, no Retry-After) at the limiters' turn.
  Requests refused before the limiters (401, ``permanent_429`` ...) spend no
  budget; one refused by the rate limiter spends no quota. Changing a
  limiter's knob builds it afresh on the next request (a new budget; a new
  concurrency limit keeps counting the requests in flight).
- ``rate_headers="spring"`` puts ``X-RateLimit-Remaining``,
  ``X-RateLimit-Replenish-Rate`` (R), ``X-RateLimit-Burst-Capacity`` (the
  limiter's quota per window, a bucket's burst) and
  ``X-RateLimit-Requested-Tokens: 1`` on every answer that reached the
  limiters, admitted or refused, describing the one that refused, else the
  rate limiter (the quota without one);
  ``rate_headers="ietf"`` puts the IETF httpapi draft's ``RateLimit-Policy:
  "default";q=<limit>;w=<window s>`` and ``RateLimit: "default";r=<remaining>;
  t=<s to a whole budget, rounded up>`` there, with a ``"quota"`` item after
  the rate's when a quota is set (``w`` is a decimal for a bucket shorter than
  a second). ``permanent_429`` answers 429 without Retry-After or budget
  headers. ``stats.rate_limited`` counts every refusal by a limiter and by
  ``permanent_429``. The shapes are pure classes (``FixedWindow`` ...
  ``Quota``, see :class:`RateLimiter`), and ``config.make_rate_limiter()``
  gives a fresh one of the knobs' shape: its ``capacity(start, end)`` is the
  most a client could have had over a run.
- A client that hangs up mid-request ends its handling (as nginx's 499 does):
  counted in ``stats.client_closed``, no longer ``in_flight``.
- Other paths: HTTP 404 ``{"status": {"statusCode": 404, "message": "Not Found!"}}``.
  Every response carries a ``requestId`` header.

Data (:class:`GatewayData`): the guide's samples (ContactType 1-14,
thritaEHR.Religion, the CtsTerminologies list, eRx 60002 and 60281), a seeded
eRx ("1000": 46,000 codes; "10000": 50,000, IsLast) and IRC (20,000), each term
with a creation date. Load your own with ``GatewayData.from_file("terms.csv")``.
"""

from ._cli import build_arg_parser, config_from_args, data_from_args, run_from_args, serve
from ._config import (
    CONCURRENCY_STATUSES,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_PASSWORD,
    DEFAULT_PID,
    DEFAULT_USERNAME,
    ERROR_STATUSES,
    RATE_HEADER_STYLES,
    RATE_LIMITER_SHAPES,
    RETRY_AFTER_FORMATS,
    GatewayConfig,
    KnobSpec,
)
from ._data import CONTACT_TYPES, CTS_TERMINOLOGIES, RELIGIONS, GatewayData, Term
from ._limiters import (
    Balanced,
    ConcurrencyCap,
    FixedWindow,
    LeakyBucket,
    Quota,
    RateLimiter,
    SlidingCounter,
    SlidingLog,
    TokenBucket,
    Verdict,
)
from ._server import OPERATIONS, FakeGateway
from ._stats import GatewayStats
from ._wire import OPERATIONS_PREFIX

__all__ = [
    "CONCURRENCY_STATUSES",
    "CONTACT_TYPES",
    "CTS_TERMINOLOGIES",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_PASSWORD",
    "DEFAULT_PID",
    "DEFAULT_USERNAME",
    "ERROR_STATUSES",
    "OPERATIONS",
    "OPERATIONS_PREFIX",
    "RATE_HEADER_STYLES",
    "RATE_LIMITER_SHAPES",
    "RELIGIONS",
    "RETRY_AFTER_FORMATS",
    "Balanced",
    "ConcurrencyCap",
    "FakeGateway",
    "FixedWindow",
    "GatewayConfig",
    "GatewayData",
    "GatewayStats",
    "KnobSpec",
    "LeakyBucket",
    "Quota",
    "RateLimiter",
    "SlidingCounter",
    "SlidingLog",
    "Term",
    "TokenBucket",
    "Verdict",
    "build_arg_parser",
    "config_from_args",
    "data_from_args",
    "run_from_args",
    "serve",
]
