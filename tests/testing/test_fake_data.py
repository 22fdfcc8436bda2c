"""The fake's data: generated terminologies, users' files, and changes a sync test needs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from fakewire import Wire
from persiantools.jdatetime import JalaliDate, JalaliDateTime

from maxa_async.testing import FakeGateway, GatewayData, Term
from maxa_async.testing._generate import generate_erx, generate_irc

TEHRAN = ZoneInfo("Asia/Tehran")
WireFor = Callable[[FakeGateway], Wire]


def from_date(moment: Any) -> dict[str, int]:
    return {
        "yearField": moment.year,
        "monthField": moment.month,
        "dayField": moment.day,
        "hourField": moment.hour,
        "minuteField": moment.minute,
        "secondField": moment.second,
    }


def jalali_now() -> Any:
    return JalaliDateTime.now(TEHRAN)


CSV_TEXT = """terminology,code,value,version,created
Drugs,1,ALPHA 5 mg TABLET ORAL,2,1402/05/01
Drugs,2,BETA 10 mg TABLET ORAL,2,2023-07-01T10:00:00
Drugs,1,ALPHA 5 mg TABLET ORAL,10,1402/05/01
Drugs,2,BETA 20 mg TABLET ORAL,10,1403/01/15 08:30
Drugs,3,GAMMA 1 % 15 g CREAM TOPICAL,10,
Colours,r,قرمز,,1400/01/01
"""


def test_csv_file_with_versions_and_dates(tmp_path: Path) -> None:
    path = tmp_path / "terms.csv"
    path.write_text(CSV_TEXT, encoding="utf-8")
    data = GatewayData.from_file(path)
    assert data.terminology_ids() == ["Drugs", "Colours"]
    assert data.versions("drugs") == ["2", "10"]  # numeric order: "10" is the latest
    assert data.latest_version("DRUGS") == "10"
    assert data.get_term("Drugs", "2") == Term(
        "2", "BETA 20 mg TABLET ORAL", JalaliDateTime(1403, 1, 15, 8, 30).to_gregorian()
    )
    assert data.get_term("Drugs", "2", "2").created == dt.datetime(2023, 7, 1, 10)  # type: ignore[union-attr]
    assert data.get_term("Drugs", "3") is not None
    assert data.get_term("Drugs", "3", "2") is None
    assert data.get_term("Colours", "r").value == "قرمز"  # type: ignore[union-attr]
    assert data.latest_version("Colours") == "1"


def test_json_file_array_or_object(tmp_path: Path) -> None:
    rows = [
        {"terminology": "Drugs", "code": "1", "value": "ALPHA", "version": "a"},
        {"terminology": "Drugs", "code": "1", "value": "ALPHA 2", "version": "b"},
    ]
    as_array = tmp_path / "array.json"
    as_array.write_text(json.dumps(rows), encoding="utf-8")
    as_object = tmp_path / "object.json"
    as_object.write_text(json.dumps({"terms": rows}), encoding="utf-8")
    for path in (as_array, as_object):
        data = GatewayData.from_file(path)
        assert data.versions("Drugs") == ["a", "b"]  # non-numeric: file order
        assert data.get_term("Drugs", "1").value == "ALPHA 2"  # type: ignore[union-attr]
    merged = GatewayData.from_file(as_array, include_defaults=True)
    assert "ContactType" in merged.terminology_ids()
    assert "Drugs" in merged.terminology_ids()


def test_bad_files(tmp_path: Path) -> None:
    no_value = tmp_path / "bad.csv"
    no_value.write_text("terminology,code\nX,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="value"):
        GatewayData.from_file(no_value)
    not_rows = tmp_path / "bad.json"
    not_rows.write_text('{"rows": 1}', encoding="utf-8")
    with pytest.raises(ValueError):
        GatewayData.from_file(not_rows)


async def test_loaded_terms_over_http(tmp_path: Path, wire_for: WireFor) -> None:
    path = tmp_path / "terms.csv"
    path.write_text(CSV_TEXT, encoding="utf-8")
    async with FakeGateway(data=GatewayData.from_file(path)) as gw:
        wire = wire_for(gw)
        versions = (await wire.call("TerminologyVersions", {"terminologyId": "drugs"})).data
        assert [(v["Version"], v["IsLast"], v["TerminologyId"]) for v in versions] == [
            ("2", False, "Drugs"),
            ("10", True, "Drugs"),
        ]
        value = await wire.call("Terminology", {"terminologyId": "Drugs", "codedString": "2"})
        assert orjson.loads(value.data) == "BETA 20 mg TABLET ORAL"
        old = {"terminologyId": "Drugs", "codedString": "2", "version": "2"}
        assert orjson.loads((await wire.call("TerminologyValueByVersion", old)).data) == (
            "BETA 10 mg TABLET ORAL"
        )
        since = {"TerminologyId": "Drugs", "FromDate": from_date(JalaliDateTime(1403, 1, 1))}
        found = (await wire.call("SearchTerminology", since)).data
        # code 2 was re-created in 1403; code 3 has no date, so it was created at load
        assert [item["coded_stringField"] for item in found] == ["2", "3"]
        assert (await wire.call("TerminologyVersions", {"terminologyId": "eRx"})).is_not_found


async def test_snapshot_sync_sees_terms_added_after_a_moment(wire: Wire, gw: FakeGateway) -> None:
    """What an offline-snapshot sync test does: remember X, change the data, ask since X."""
    body = {"terminologyId": "eRx", "version": "10000"}
    assert len((await wire.call("TerminologiesTermByVersion", body)).data) == 50_000
    moment = jalali_now().replace(microsecond=0)
    since = {"TerminologyId": "eRx", "FromDate": from_date(moment)}
    assert (await wire.call("SearchTerminology", since)).is_not_found

    gw.add_terms("eRx", [Term("999001", "NEWDRUG 5 mg TABLET ORAL")])
    gw.change_term("eRx", "60002", "ACETAMINOPHEN 100 mg / 1mL 30 mL SOLUTION / DROPS ORAL")
    gw.add_terms("eRx", [Term("999002", "BACKDATED 1 mg TABLET ORAL", dt.date(2020, 1, 1))])
    found = (await wire.call("SearchTerminology", since)).data
    assert [(item["coded_stringField"], item["terminology_idField"]) for item in found] == [
        ("60002", "eRx"),
        ("999001", "eRx"),
    ]
    # the cached whole-version answer is refreshed
    assert len((await wire.call("TerminologiesTermByVersion", body)).data) == 50_002
    # the older version is untouched
    old = {"terminologyId": "eRx", "codedString": "60002", "version": "1000"}
    assert "15 mL" in orjson.loads((await wire.call("TerminologyValueByVersion", old)).data)

    gw.remove_term("eRx", "999002")
    assert gw.data.get_term("eRx", "999002") is None


async def test_add_version_becomes_latest(wire: Wire, gw: FakeGateway) -> None:
    gw.add_version("eRx", "10001", [Term("60002", "CHANGED")], inherit=True)
    versions = (await wire.call("TerminologyVersions")).data
    assert [(v["Version"], v["IsLast"]) for v in versions] == [
        ("1000", False),
        ("10000", False),
        ("10001", True),
    ]
    assert versions[-1]["VersionId"] > 86
    assert versions[-1]["id"] > 147
    new = {"terminologyId": "eRx", "version": "10001"}
    assert len((await wire.call("TerminologiesTermByVersion", new)).data) == 50_000
    body = {"terminologyId": "eRx", "codedString": "60002"}
    assert orjson.loads((await wire.call("Terminology", body)).data) == "CHANGED"
    with pytest.raises(ValueError):
        gw.add_version("eRx", "10001", [])
    gw.add_version("eRx", "9999", [Term("1", "x")], is_last=False)
    assert gw.data.latest_version("eRx") == "10001"


async def test_changes_do_not_leak_between_gateways(wire_for: WireFor) -> None:
    async with FakeGateway() as first, FakeGateway() as second:
        first.change_term("eRx", "60281", "CHANGED")
        first.add_terms("ContactType", [Term("15", "x")])
        assert second.data.get_term("eRx", "60281").value.endswith("[MEGACORT]")  # type: ignore[union-attr]
        assert second.data.get_term("ContactType", "15") is None
        assert GatewayData.default().get_term("eRx", "60281").value != "CHANGED"  # type: ignore[union-attr]


def test_term_created_accepts_many_spellings() -> None:
    tehran_noon = dt.datetime(2024, 3, 20, 12, 0)
    assert Term("1", "v", tehran_noon).created == tehran_noon
    utc = dt.datetime(2024, 3, 20, 8, 30, tzinfo=dt.UTC)
    assert Term("1", "v", utc).created == tehran_noon
    assert Term("1", "v", dt.date(2024, 3, 20)).created == dt.datetime(2024, 3, 20)
    assert Term("1", "v", JalaliDate(1403, 1, 1)).created == dt.datetime(2024, 3, 20)
    assert Term("1", "v", "1403/01/01 12:00").created == tehran_noon
    assert Term("1", "v", "2024-03-20T08:30:00+00:00").created == tehran_noon
    assert Term("1", "v").created is None
    with pytest.raises(TypeError):
        Term("1", 5)  # type: ignore[arg-type]


def test_generation_is_seeded_and_keeps_the_samples() -> None:
    old, latest = generate_erx(1234)
    irc = generate_irc(1234)
    assert (len(old), len(latest), len(irc)) == (46_000, 50_000, 20_000)
    assert generate_erx(1234) is generate_erx(1234)  # cached
    _, other_latest = generate_erx(0)
    assert [row[1] for row in latest[:50]] != [row[1] for row in other_latest[:50]]
    for data in (GatewayData.default(1234), GatewayData.default(0)):
        assert data.get_term("eRx", "60002", "1000") == data.get_term("eRx", "60002")
        assert data.get_term("eRx", "60281").value == (  # type: ignore[union-attr]
            "MOMETASONE FUROATE 0.1 % 15 g CREAM TOPICAL [MEGACORT]"
        )
    assert len({code for code, _, _ in irc}) == 20_000


def test_samples_only() -> None:
    data = GatewayData.default(generated=False)
    assert data.versions("eRx") == []
    assert data.get_term("thritaEHR.Religion", "1").value == "اسلام"  # type: ignore[union-attr]
    assert len(data.terms("ContactType")) == 14
