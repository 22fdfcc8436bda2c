"""Per-call options and hooks: a prescriber's lookup with a 3 s budget and an audit log
of the gateway's request ids, on the same client as a bulk run. Credentials from MAXA_*."""

import asyncio
import logging

import maxa_async as maxa
from maxa_async.events import RequestEvent, ResponseEvent

audit = logging.getLogger("audit")


def correlate(event: RequestEvent) -> None:
    event.headers["X-Correlation-Id"] = "rx-1403-0001"  # your own header, every attempt


def record(event: ResponseEvent) -> None:
    audit.info(
        "%s %s request_id=%s attempts=%d%s",
        event.operation,
        event.status,
        event.request_id,
        event.attempts,
        " (cached)" if event.cached else " (coalesced)" if event.coalesced else "",
    )


async def main() -> None:
    async with maxa.MaxaClient.from_env(on_request=correlate, on_response=record) as client:
        quick = client.with_options(timeout=2, retry=maxa.RetryPolicy(attempts=2), deadline=3)
        print(await quick.terminology("thritaEHR.Religion", "1"))
        line = maxa.CodedText(value="اسلام", terminology_id="thritaEHR.Religion", coded_string="1")
        async for outcome in client.validate_many([line, line]):
            print(outcome.valid)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    asyncio.run(main())
