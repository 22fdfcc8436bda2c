"""The seven MAXA operations over HTTP: success, not found, bad input, auth and headers."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fakewire import FROM_1390, METHODS, SAMPLE_BODIES, Wire

from maxa_async.testing import CONTACT_TYPES, CTS_TERMINOLOGIES, FakeGateway, Term

UNAUTHORIZED = {"status": 0, "code": 401, "msg": "", "violations": []}
BAD_REQUEST = {"status": {"statusCode": 400, "message": "Bad request."}}


def from_date(**fields: int) -> dict[str, Any]:
    date = dict(FROM_1390)
    date.update({f"{name}Field": value for name, value in fields.items()})
    return date


# -- success --------------------------------------------------------------------------------


async def test_terminology_is_get_with_json_body_and_value_json_encoded(wire: Wire) -> None:
    reply = await wire.call("Terminology")
    assert reply.status == 200
    assert (
        reply.body
        == (
            '{"result":{"data":"\\"اسلام\\"","status":{"statusCode":200}},'
            '"status":{"statusCode":200,"message":"OK"}}'
        ).encode()
    )
    assert reply.data == '"اسلام"'
    assert orjson.loads(reply.data) == "اسلام"
    assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
    assert reply.headers["requestId"]


async def test_terminology_ids_match_without_case_after_stripping(wire: Wire) -> None:
    for spelling in ("eRx", "ERX", " erX ", "ErX\t"):
        reply = await wire.call("Terminology", {"terminologyId": spelling, "codedString": "60281"})
        assert orjson.loads(reply.data) == (
            "MOMETASONE FUROATE 0.1 % 15 g CREAM TOPICAL [MEGACORT]"
        )
    padded = await wire.call("Terminology", {"terminologyId": "eRx", "codedString": " 60002 "})
    assert orjson.loads(padded.data).startswith("ACETAMINOPHEN 100 mg / 1mL")


async def test_search_terminology_returns_the_guides_contact_types(wire: Wire) -> None:
    data = (await wire.call("SearchTerminology")).data
    assert len(data) == 14
    assert [item["coded_stringField"] for item in data] == sorted(CONTACT_TYPES)
    assert data[0] == {
        "valueField": "تلفن منزل",
        "terminology_idField": "ContactType",
        "coded_stringField": "1",
    }
    assert {item["coded_stringField"]: item["valueField"] for item in data} == dict(CONTACT_TYPES)


async def test_search_terminology_filters_by_creation_date(wire: Wire, gw: FakeGateway) -> None:
    body = {"TerminologyId": "ContactType", "FromDate": from_date(year=1395)}
    assert (await wire.call("SearchTerminology", body)).is_not_found
    gw.add_terms("ContactType", [Term("15", "تلفن اضطراری", "1396/02/01 10:00")])
    data = (await wire.call("SearchTerminology", body)).data
    assert data == [
        {
            "valueField": "تلفن اضطراری",
            "terminology_idField": "ContactType",
            "coded_stringField": "15",
        }
    ]
    gw.config.empty_as_not_found = False
    later = {"TerminologyId": "ContactType", "FromDate": from_date(year=1400)}
    assert (await wire.call("SearchTerminology", later)).data == []


async def test_search_terminology_on_generated_erx_filters_for_real(wire: Wire) -> None:
    since_1401 = {"TerminologyId": "eRx", "FromDate": from_date(year=1401, month=1, day=1)}
    data = (await wire.call("SearchTerminology", since_1401)).data
    assert 0 < len(data) < 50_000
    assert all(item["terminology_idField"] == "eRx" for item in data)


async def test_validate_cts_true_false_and_unknown_terminology(wire: Wire) -> None:
    assert (await wire.call("ValidateCts")).data == "true"
    coded = dict(SAMPLE_BODIES["ValidateCts"]["DoCodedText"])
    padded = {**coded, "valueField": "  پست الکترونیکی شخصی ", "terminology_idField": "contacttype"}
    assert (await wire.call("ValidateCts", {"DoCodedText": padded})).data == "true"
    wrong_value = {**coded, "valueField": "تلفن منزل"}
    assert (await wire.call("ValidateCts", {"DoCodedText": wrong_value})).data == "false"
    unknown_code = {**coded, "coded_stringField": "99"}
    assert (await wire.call("ValidateCts", {"DoCodedText": unknown_code})).data == "false"
    empty_value = {**coded, "valueField": ""}
    assert (await wire.call("ValidateCts", {"DoCodedText": empty_value})).data == "false"
    unknown = {**coded, "terminology_idField": "NoSuchThing"}
    assert (await wire.call("ValidateCts", {"DoCodedText": unknown})).is_not_found


async def test_validate_cts_uses_the_latest_erx_version(wire: Wire, gw: FakeGateway) -> None:
    old = {term.code: term.value for term in gw.data.terms("eRx", "1000")}
    new = {term.code: term.value for term in gw.data.terms("eRx")}
    changed = [code for code in old if code in new and new[code] != old[code]]
    assert len(changed) == 2_000
    assert len(set(old) - set(new)) == 1_000
    assert old["60002"] == new["60002"]
    code = changed[0]
    old_value, new_value = old[code], new[code]

    def body(value: str) -> dict[str, Any]:
        return {
            "DoCodedText": {
                "valueField": value,
                "terminology_idField": "eRx",
                "coded_stringField": code,
            }
        }

    assert (await wire.call("ValidateCts", body(new_value))).data == "true"
    assert (await wire.call("ValidateCts", body(old_value))).data == "false"


async def test_cts_terminologies_sample_list_and_filter(wire: Wire) -> None:
    assert (await wire.call("CtsTerminologies")).data == list(CTS_TERMINOLOGIES)
    later = await wire.call("CtsTerminologies", {"FromDate": from_date(year=1394, month=1, day=1)})
    assert 0 < len(later.data) < len(CTS_TERMINOLOGIES)
    assert later.data == list(CTS_TERMINOLOGIES)[-len(later.data) :]
    assert (await wire.call("CtsTerminologies", {"FromDate": from_date(year=1500)})).is_not_found


async def test_terminology_value_by_version(wire: Wire) -> None:
    reply = await wire.call("TerminologyValueByVersion")
    assert reply.data == '"ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"'
    newer = {"terminologyId": "eRx", "codedString": "60281", "version": "10000"}
    assert orjson.loads((await wire.call("TerminologyValueByVersion", newer)).data).endswith(
        "[MEGACORT]"
    )
    absent_in_old = {"terminologyId": "eRx", "codedString": "60281", "version": "1000"}
    assert (await wire.call("TerminologyValueByVersion", absent_in_old)).is_not_found
    no_version = {"terminologyId": "eRx", "codedString": "60002", "version": "7"}
    assert (await wire.call("TerminologyValueByVersion", no_version)).is_not_found


async def test_terminologies_term_by_version_whole_versions(wire: Wire) -> None:
    contact = (await wire.call("TerminologiesTermByVersion")).data
    assert len(contact) == 14
    latest = await wire.call(
        "TerminologiesTermByVersion", {"terminologyId": "erX", "version": "10000"}
    )
    items = latest.data
    assert len(items) == 50_000
    assert {
        "valueField": "MOMETASONE FUROATE 0.1 % 15 g CREAM TOPICAL [MEGACORT]",
        "terminology_idField": "eRx",
        "coded_stringField": "60281",
    } in items
    old = await wire.call("TerminologiesTermByVersion", {"terminologyId": "ERX", "version": "1000"})
    assert len(old.data) == 46_000
    irc = await wire.call(
        "TerminologiesTermByVersion", {"terminologyId": "irc", "version": "1401.11"}
    )
    assert len(irc.data) == 20_000
    assert all(len(item["coded_stringField"]) == 16 for item in irc.data[:100])
    missing = {"terminologyId": "eRx", "version": "999"}
    assert (await wire.call("TerminologiesTermByVersion", missing)).is_not_found


async def test_terminology_versions(wire: Wire) -> None:
    assert (await wire.call("TerminologyVersions")).data == [
        {"id": 146, "TerminologyId": "eRX", "Version": "1000", "VersionId": 85, "IsLast": False},
        {"id": 147, "TerminologyId": "eRX", "Version": "10000", "VersionId": 86, "IsLast": True},
    ]
    assert (await wire.call("TerminologyVersions", {"terminologyId": "Nope"})).is_not_found
    # a terminology of the catalogue without any version
    assert (await wire.call("TerminologyVersions", {"terminologyId": "LNC"})).is_not_found


# -- not found --------------------------------------------------------------------------------

NOT_FOUND_BODIES: dict[str, dict[str, Any]] = {
    "Terminology": {"terminologyId": "thritaEHR.Religion", "codedString": "999"},
    "SearchTerminology": {"TerminologyId": "NoSuch", "FromDate": FROM_1390},
    "ValidateCts": {
        "DoCodedText": {
            "valueField": "x",
            "terminology_idField": "thrिताEHR.Religion",
            "coded_stringField": "1",
        }
    },
    "CtsTerminologies": {"FromDate": from_date(year=1499)},
    "TerminologyValueByVersion": {"terminologyId": "eRx", "codedString": "1", "version": "1000"},
    "TerminologiesTermByVersion": {"terminologyId": "NoSuch", "version": "1"},
    "TerminologyVersions": {"terminologyId": "NoSuch"},
}


@pytest.mark.parametrize("operation", sorted(NOT_FOUND_BODIES))
async def test_not_found_is_inner_404_in_outer_200(
    wire: Wire, gw: FakeGateway, operation: str
) -> None:
    reply = await wire.call(operation, NOT_FOUND_BODIES[operation])
    assert reply.is_not_found, reply
    assert gw.stats.not_found == 1


# -- bad input ----------------------------------------------------------------------------------

BAD_BODIES: list[tuple[str, Any]] = [
    ("Terminology", {"terminologyId": "eRx"}),
    ("Terminology", {"terminologyId": "eRx", "codedString": 60002}),
    ("Terminology", {"terminologyId": "  ", "codedString": "1"}),
    ("Terminology", {"TerminologyId": "eRx", "codedString": "1"}),  # keys as the guide spells them
    ("SearchTerminology", {"TerminologyId": "ContactType"}),
    ("SearchTerminology", {"TerminologyId": "ContactType", "FromDate": from_date(month=13)}),
    ("SearchTerminology", {"TerminologyId": "ContactType", "FromDate": from_date(month=0)}),
    ("SearchTerminology", {"TerminologyId": "ContactType", "FromDate": from_date(month=7, day=31)}),
    ("SearchTerminology", {"TerminologyId": "ContactType", "FromDate": from_date(month=6, day=32)}),
    # 1402 is not a leap year: Esfand has 29 days
    (
        "SearchTerminology",
        {"TerminologyId": "ContactType", "FromDate": from_date(year=1402, month=12, day=30)},
    ),
    ("SearchTerminology", {"TerminologyId": "ContactType", "FromDate": from_date(hour=24)}),
    ("SearchTerminology", {"TerminologyId": "ContactType", "FromDate": from_date(minute=60)}),
    ("SearchTerminology", {"TerminologyId": "ContactType", "FromDate": from_date(second=-1)}),
    (
        "SearchTerminology",
        {"TerminologyId": "ContactType", "FromDate": {**FROM_1390, "yearField": "1390"}},
    ),
    (
        "SearchTerminology",
        {"TerminologyId": "ContactType", "FromDate": {**FROM_1390, "iSOStringField": 5}},
    ),
    ("CtsTerminologies", {"FromDate": {"yearField": 1390, "monthField": 10, "dayField": 10}}),
    ("CtsTerminologies", {"FromDate": "1390-10-10"}),
    ("ValidateCts", {"DoCodedText": "x"}),
    (
        "ValidateCts",
        {"DoCodedText": {"terminology_idField": "ContactType", "coded_stringField": "6"}},
    ),
    (
        "ValidateCts",
        {"valueField": "x", "terminology_idField": "ContactType", "coded_stringField": "6"},
    ),
    ("TerminologyValueByVersion", {"terminologyId": "eRx", "codedString": "60002"}),
    ("TerminologiesTermByVersion", {"terminologyId": "eRx", "version": 10000}),
    ("TerminologyVersions", {"terminology_idField": "eRx"}),
    ("TerminologyVersions", ["eRx"]),
]


@pytest.mark.parametrize(("operation", "body"), BAD_BODIES)
async def test_bad_input_is_400_in_the_envelope(wire: Wire, operation: str, body: Any) -> None:
    reply = await wire.call(operation, body)
    assert reply.status == 400
    assert reply.json() == BAD_REQUEST
    assert reply.headers["requestId"]


async def test_leap_esfand_30_is_accepted(wire: Wire) -> None:
    body = {"TerminologyId": "ContactType", "FromDate": from_date(year=1403, month=12, day=30)}
    assert (await wire.call("SearchTerminology", body)).is_not_found  # valid, nothing since


@pytest.mark.parametrize("operation", sorted(SAMPLE_BODIES))
async def test_malformed_json_is_400(wire: Wire, operation: str) -> None:
    reply = await wire.call(operation, raw_body=b'{"terminologyId": ')
    assert (reply.status, reply.json()) == (400, BAD_REQUEST)


@pytest.mark.parametrize("operation", sorted(SAMPLE_BODIES))
async def test_wrong_method_is_400(wire: Wire, operation: str) -> None:
    wrong = "POST" if METHODS[operation] == "GET" else "GET"
    reply = await wire.call(operation, method=wrong)
    assert (reply.status, reply.json()) == (400, BAD_REQUEST)


async def test_content_type_must_be_json(wire: Wire) -> None:
    reply = await wire.call("ValidateCts", headers={"Content-Type": "text/plain"})
    assert (reply.status, reply.json()) == (400, BAD_REQUEST)
    charset = await wire.call(
        "ValidateCts", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert charset.data == "true"


# -- auth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", sorted(SAMPLE_BODIES))
async def test_bad_bearer_is_401_in_the_gateway_shape(wire: Wire, operation: str) -> None:
    reply = await wire.call(operation, token="not-a-token")
    assert (reply.status, reply.json()) == (401, UNAUTHORIZED)
    assert reply.headers["requestId"]


async def test_missing_authorization_or_wrong_scheme_is_401(wire: Wire) -> None:
    token = await wire.login()
    for authorization in ("", f"Basic {token}", token):
        reply = await wire.call("ValidateCts", headers={"Authorization": authorization})
        assert (reply.status, reply.json()) == (401, UNAUTHORIZED)
    assert (await wire.call("ValidateCts", headers={"Authorization": f"bearer {token}"})).data


async def test_missing_or_wrong_pid_is_401(wire: Wire, gw: FakeGateway) -> None:
    await wire.login()
    wrong = await wire.call("ValidateCts", pid="other-pid")
    assert (wrong.status, wrong.json()) == (401, UNAUTHORIZED)
    missing = await wire.raw(
        "POST",
        "/api/client/apim/v1/maksaservice/gwmaksa/ValidateCts",
        data=orjson.dumps(SAMPLE_BODIES["ValidateCts"]),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {wire.access}"},
    )
    assert (missing.status, missing.json()) == (401, UNAUTHORIZED)
    assert (await wire.call("ValidateCts", headers={"PID": gw.config.pid})).data == "true"


async def test_unknown_paths_are_404_with_request_id(wire: Wire) -> None:
    for path in (
        "/api/client/apim/v1/maksaservice/gwmaksa/NoSuchOperation",
        "/api/client/apim/v1/maksaservice/gw/maksa/Terminology",
        "/",
    ):
        reply = await wire.raw("POST", path)
        assert reply.status == 404
        assert reply.json() == {"status": {"statusCode": 404, "message": "Not Found!"}}
        assert reply.headers["requestId"]


async def test_request_ids_differ(wire: Wire) -> None:
    ids = {(await wire.call("ValidateCts")).headers["requestId"] for _ in range(5)}
    assert len(ids) == 5
