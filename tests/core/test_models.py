"""Models: secrets never shown, from_env, frozen value objects."""

from __future__ import annotations

import attrs
import pytest

from maxa_async.errors import InvalidInputError
from maxa_async.jalali import JalaliDateTime
from maxa_async.models import CodedText, Credentials, TerminologyVersion, Token, latest_version

SECRET = "s3cr3t-CLIENT-value"
PASSWORD = "p4ssw0rd-USER-value"
ENV = {
    "MAXA_CLIENT_ID": "client-42",
    "MAXA_CLIENT_SECRET": SECRET,
    "MAXA_USERNAME": "hospital-user",
    "MAXA_PASSWORD": PASSWORD,
    "MAXA_PID": "pid-777",
}


def make_credentials() -> Credentials:
    return Credentials(
        client_id="client-42",
        client_secret=SECRET,
        username="hospital-user",
        password=PASSWORD,
        pid="pid-777",
    )


def test_credentials_repr_and_str_hide_the_secrets() -> None:
    creds = make_credentials()
    for shown in (repr(creds), str(creds), f"{creds}", f"{creds!r}", repr([creds])):
        assert SECRET not in shown
        assert PASSWORD not in shown
        assert "client-42" in shown and "hospital-user" in shown and "pid-777" in shown
    assert "***" in repr(creds)
    # the values are still there for the token request
    assert creds.client_secret == SECRET and creds.password == PASSWORD


def test_credentials_from_env() -> None:
    assert Credentials.from_env(ENV) == make_credentials()
    padded = {name: f"  {value}\n" for name, value in ENV.items()}
    assert Credentials.from_env(padded) == make_credentials()


@pytest.mark.parametrize("missing", sorted(ENV))
def test_from_env_names_the_missing_variable(missing: str) -> None:
    for environ in ({k: v for k, v in ENV.items() if k != missing}, {**ENV, missing: "   "}):
        with pytest.raises(InvalidInputError) as caught:
            Credentials.from_env(environ)
        assert caught.value.field == missing
        assert missing in str(caught.value)
        assert SECRET not in str(caught.value) and PASSWORD not in str(caught.value)
        assert isinstance(caught.value, ValueError)


def test_from_env_names_every_missing_variable() -> None:
    with pytest.raises(InvalidInputError) as caught:
        Credentials.from_env({"MAXA_CLIENT_ID": "x"})
    for name in ("MAXA_CLIENT_SECRET", "MAXA_USERNAME", "MAXA_PASSWORD", "MAXA_PID"):
        assert name in str(caught.value)


def test_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert Credentials.from_env() == make_credentials()


@pytest.mark.parametrize("field", ["client_id", "client_secret", "username", "password", "pid"])
@pytest.mark.parametrize("bad", ["", "   ", None, 12345])
def test_credentials_fields_must_be_non_empty_strings(field: str, bad: object) -> None:
    values = attrs.asdict(make_credentials())
    values[field] = bad
    with pytest.raises(InvalidInputError) as caught:
        Credentials(**values)
    assert caught.value.field == field
    assert SECRET not in str(caught.value) and PASSWORD not in str(caught.value)


def test_token_repr_redacts_the_tokens() -> None:
    token = Token(
        access_token="c8abceda-aa31-4a7e-95c0-213e5709e6b6",
        refresh_token="84dc3bf1-7342-4c5e-adc3-c2304583ae02",
        token_type="bearer",
        scope="trust read write",
        expires_at=1763.0,
        lifetime=763.0,
    )
    for shown in (repr(token), str(token)):
        assert "c8abceda" not in shown and "84dc3bf1" not in shown
        assert "bearer" in shown and "763.0" in shown
    no_refresh = attrs.evolve(token, refresh_token=None)
    assert "refresh_token=None" in repr(no_refresh)


def test_token_timing() -> None:
    token = Token("a", "r", "bearer", None, expires_at=1900.0, lifetime=900.0)
    assert token.remaining(now=1000.0) == 900.0
    assert token.remaining(now=2000.0) == -100.0
    assert token.refresh_due_at(0.8) == pytest.approx(1720.0)
    assert token.refresh_due_at(1.0) == 1900.0


@pytest.mark.parametrize(
    ("instance", "field"),
    [
        (CodedText("v", "eRx", "1"), "value"),
        (TerminologyVersion(147, "eRX", "10000", 86, True), "is_last"),
        (JalaliDateTime(1403, 12, 30), "day"),
        (make_credentials(), "password"),
        (Token("a", "r", "bearer", None, 1.0, 1.0), "access_token"),
    ],
)
def test_models_are_frozen_slotted_values(instance: object, field: str) -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(instance, field, "changed")
    assert not hasattr(instance, "__dict__")
    assert instance == attrs.evolve(instance)
    assert hash(instance) == hash(attrs.evolve(instance))


def test_models_are_keyword_friendly_and_snake_case() -> None:
    term = CodedText(value="اسلام", terminology_id="thritaEHR.Religion", coded_string="1")
    assert attrs.asdict(term) == {
        "value": "اسلام",
        "terminology_id": "thritaEHR.Religion",
        "coded_string": "1",
    }
    version = TerminologyVersion(
        id=147, terminology_id="eRX", version="10000", version_id=86, is_last=True
    )
    assert [f.name for f in attrs.fields(TerminologyVersion)] == [
        "id",
        "terminology_id",
        "version",
        "version_id",
        "is_last",
    ]
    assert version.is_last is True


def _version(version_id: int, is_last: bool) -> TerminologyVersion:
    return TerminologyVersion(
        id=version_id,
        terminology_id="eRx",
        version=f"v{version_id}",
        version_id=version_id,
        is_last=is_last,
    )


def test_latest_version_is_the_one_marked_last_else_the_highest_id() -> None:
    assert latest_version([]) is None
    marked = [_version(3, False), _version(1, True), _version(2, False)]
    assert latest_version(marked) == _version(1, True)  # the gateway's mark wins
    assert latest_version([_version(1, False), _version(3, False)]) == _version(3, False)
    several = [_version(2, True), _version(5, True), _version(9, False)]
    assert latest_version(iter(several)) == _version(5, True)
