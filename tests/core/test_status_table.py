"""The status table (errors.py) and the envelope parser (envelope.py): the guide's codes,
outer vs inner status, the gateway's other error shape, and bodies that are not JSON."""

from __future__ import annotations

import json

import pytest

from maxa_async.envelope import header, parse_envelope, parse_retry_after
from maxa_async.errors import (
    REJECTED_GRANT_ERRORS,
    STATUS_TABLE,
    TOKEN_STATUS_TABLE,
    AuthenticationError,
    BadRequestError,
    ClientLimitError,
    ConfigError,
    ForbiddenError,
    HttpsRequiredError,
    InvalidInputError,
    MaxaError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    ServiceError,
    TransportError,
    error_for_status,
    error_for_token_answer,
    rule_for_status,
    rule_for_token_answer,
)

from ._samples import envelope

HEADERS = {"requestId": "req-77"}
OPERATION = "ValidateCts"

#: MAXA_API.md's table, restated independently of errors.STATUS_TABLE.
SPEC_ERRORS: dict[int, tuple[type[MaxaError], bool]] = {
    400: (BadRequestError, False),
    401: (AuthenticationError, False),  # the token manager refreshes; replaying as-is won't help
    403: (ForbiddenError, False),
    404: (NotFoundError, False),
    410: (HttpsRequiredError, False),
    429: (RateLimitedError, True),
    499: (ServiceError, True),
    500: (ServiceError, True),
    503: (ServiceError, True),
    504: (ServiceError, True),
    520: (ServiceError, True),
    # codes the guide does not list: an unknown 4xx is a response we can't read,
    # an unknown 5xx is still the gateway failing
    418: (ProtocolError, False),
    599: (ServiceError, True),
}

HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


def test_the_table_covers_every_code_of_the_guide() -> None:
    guide_codes = {200, 202, 400, 401, 403, 404, 410, 429, 499, 500, 503, 504, 520}
    assert guide_codes <= set(STATUS_TABLE)
    assert STATUS_TABLE[200].error is None and STATUS_TABLE[202].error is None


def test_the_error_tree() -> None:
    for cls in (
        AuthenticationError,
        BadRequestError,
        ForbiddenError,
        HttpsRequiredError,
        InvalidInputError,
        NotFoundError,
        ProtocolError,
        RateLimitedError,
        ServiceError,
        TransportError,
    ):
        assert issubclass(cls, MaxaError)
    assert issubclass(InvalidInputError, ValueError)
    assert not issubclass(ProtocolError, ValueError)
    assert TransportError("x").retryable is True


@pytest.mark.parametrize("code", sorted(SPEC_ERRORS))
def test_error_for_status(code: int) -> None:
    cls, retryable = SPEC_ERRORS[code]
    error = error_for_status(code, operation=OPERATION, request_id="req-77")
    assert type(error) is cls
    assert error.retryable is retryable
    assert rule_for_status(code).retryable is retryable
    assert (error.status, error.operation, error.request_id) == (code, OPERATION, "req-77")
    assert f"status={code}" in str(error) and "req-77" in str(error) and OPERATION in str(error)


@pytest.mark.parametrize("code", sorted(SPEC_ERRORS))
def test_outer_status_as_http_and_in_the_body(code: int) -> None:
    cls, retryable = SPEC_ERRORS[code]
    body = envelope(None, inner=code, outer=code)
    for http_status in (code, 200):
        with pytest.raises(cls) as caught:
            parse_envelope(http_status, HEADERS, body, operation=OPERATION)
        assert type(caught.value) is cls
        assert caught.value.status == code
        assert caught.value.retryable is retryable
        assert (caught.value.operation, caught.value.request_id) == (OPERATION, "req-77")


@pytest.mark.parametrize("code", sorted(SPEC_ERRORS))
def test_inner_status_inside_an_outer_200(code: int) -> None:
    cls, retryable = SPEC_ERRORS[code]
    with pytest.raises(cls) as caught:
        parse_envelope(200, HEADERS, envelope(None, inner=code), operation=OPERATION)
    assert caught.value.status == code
    assert caught.value.retryable is retryable


@pytest.mark.parametrize("code", [200, 202])
def test_success_codes_return_data(code: int) -> None:
    data = [{"valueField": "اسلام"}]
    assert parse_envelope(code, HEADERS, envelope(data, inner=code, outer=code)) == data
    assert parse_envelope(200, HEADERS, envelope(data, inner=code, outer=code)) == data


def test_202_without_data_is_a_retryable_service_error() -> None:
    for body in (
        envelope(None, inner=202, outer=202),
        envelope(None, inner=202),
        json.dumps({"status": {"statusCode": 202, "message": "Accepted!"}}).encode(),
    ):
        with pytest.raises(ServiceError) as caught:
            parse_envelope(202, HEADERS, body, operation=OPERATION)
        assert caught.value.status == 202
        assert caught.value.retryable is True
        assert "202" in str(caught.value)


def test_not_found_is_an_inner_404_in_an_outer_200() -> None:
    body = envelope(None, inner=404)
    with pytest.raises(NotFoundError) as caught:
        parse_envelope(200, HEADERS, body, operation="Terminology")
    assert (caught.value.status, caught.value.operation, caught.value.request_id) == (
        404,
        "Terminology",
        "req-77",
    )


def test_outer_failure_wins_over_an_inner_success() -> None:
    with pytest.raises(ServiceError) as caught:
        parse_envelope(200, HEADERS, envelope("x", inner=200, outer=503))
    assert caught.value.status == 503


def test_an_http_failure_wins_over_a_body_that_says_200() -> None:
    with pytest.raises(ServiceError) as caught:
        parse_envelope(502, HEADERS, envelope("x"))
    assert caught.value.status == 502 and caught.value.retryable is True
    with pytest.raises(ForbiddenError):
        parse_envelope(403, HEADERS, envelope("x"))


def test_status_codes_as_numeric_strings() -> None:
    body = json.dumps(
        {"result": {"status": {"statusCode": "404"}}, "status": {"statusCode": "200"}}
    )
    with pytest.raises(NotFoundError):
        parse_envelope(200, HEADERS, body.encode())


def test_unreadable_status_codes_fall_back_to_http() -> None:
    # "²" is a digit to str.isdigit() but not to int(): this used to escape as ValueError
    for code in ("²", "9" * 5000, True, None, [200], 1.5):
        body = {
            "result": {"data": "ok", "status": {"statusCode": code}},
            "status": {"statusCode": code},
        }
        assert parse_envelope(200, HEADERS, json.dumps(body).encode()) == "ok"
        with pytest.raises(ServiceError):
            parse_envelope(503, HEADERS, json.dumps(body).encode())


# --------------------------------------------------------------------------- the other shape


@pytest.mark.parametrize("http_status", [200, 401])
def test_the_status_0_code_401_shape_is_an_authentication_error(http_status: int) -> None:
    body = b'{"status": 0, "code": 401, "msg": "", "violations": []}'
    with pytest.raises(AuthenticationError) as caught:
        parse_envelope(http_status, HEADERS, body, operation=OPERATION)
    assert (caught.value.status, caught.value.operation, caught.value.request_id) == (
        401,
        OPERATION,
        "req-77",
    )


@pytest.mark.parametrize(
    ("code", "cls"), [(403, ForbiddenError), (429, RateLimitedError), (500, ServiceError)]
)
def test_the_other_shape_carries_any_code(code: int, cls: type[MaxaError]) -> None:
    body = json.dumps({"status": 0, "code": code, "msg": "blocked here", "violations": []})
    with pytest.raises(cls) as caught:
        parse_envelope(200, HEADERS, body.encode())
    assert caught.value.status == code
    assert "blocked here" in str(caught.value)  # the gateway's msg is kept for the reader


# --------------------------------------------------------------------------- messages


def test_messages_a_person_can_act_on() -> None:
    forbidden = str(error_for_status(403, operation=OPERATION, request_id=None))
    assert "IP" in forbidden and "regist" in forbidden
    https = str(error_for_status(410, operation=OPERATION, request_id=None))
    assert "https" in https
    limited = str(error_for_status(429, operation=OPERATION, request_id=None))
    assert "permission" in limited
    assert "too many requests" in limited


def test_gateway_detail_is_added_only_when_it_says_something_new() -> None:
    same = error_for_status(404, operation=None, request_id=None, detail="Not Found!")
    assert "gateway said" not in str(same)
    new = error_for_status(404, operation=None, request_id=None, detail="no such code")
    assert "[gateway said: no such code]" in str(new)


def test_repr_carries_the_context() -> None:
    error = error_for_status(503, operation=OPERATION, request_id="req-77")
    assert repr(error).startswith("ServiceError(")
    assert "status=503" in repr(error) and "'req-77'" in repr(error)


# --------------------------------------------------------------------------- 429 and Retry-After


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"RETRY-AFTER": "0"}, 0.0),
        ({}, None),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # an HTTP-date gone by
        ({"Retry-After": "-3"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": "soon"}, None),
        # Retry-After-Ms (Azure API Management) says the same wait to the millisecond
        ({"Retry-After": "1", "Retry-After-Ms": "137"}, 0.137),
        ({"retry-after-ms": "2500"}, 2.5),
        ({"Retry-After": "1", "Retry-After-Ms": "soon"}, 1.0),
        ({"Retry-After": "1", "Retry-After-Ms": "-5"}, 1.0),
        ({"Retry-After-Ms": "nan"}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected

    for body in (envelope(None, outer=429), HTML, b""):
        with pytest.raises(RateLimitedError) as caught:
            parse_envelope(429, {**HEADERS, **headers}, body, operation=OPERATION)
        assert caught.value.retry_after == expected
        assert caught.value.retryable is True
        assert caught.value.status == 429


def test_retry_after_as_an_http_date_counts_from_now() -> None:
    headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}  # RFC 9110's example
    then = 1445412480.0  # that instant, as a Unix time
    assert parse_retry_after(headers, now=then - 3.0) == 3.0
    assert parse_retry_after(headers, now=then + 5.0) == 0.0
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:01"}, now=then) == 1.0


@pytest.mark.parametrize(("status", "expected"), [(503, 5.0), (500, None), (502, None)])
def test_retry_after_is_read_on_a_503_too(status: int, expected: float | None) -> None:
    # RFC 9110 gives a 503's Retry-After a meaning (how long the service is expected to
    # be unavailable); on other failures it is ignored.
    with pytest.raises(ServiceError) as caught:
        parse_envelope(status, {"Retry-After": "5"}, envelope(None, outer=status))
    assert caught.value.retry_after == expected
    assert caught.value.retryable is True


def test_a_proxys_maintenance_page_keeps_its_retry_after() -> None:
    page = b"<html><body>Down for maintenance</body></html>"
    with pytest.raises(ProtocolError) as caught:
        parse_envelope(503, {"Retry-After": "120"}, page)
    assert caught.value.status == 503 and caught.value.retry_after == 120.0
    with pytest.raises(ProtocolError) as caught:
        parse_envelope(502, {"Retry-After": "120"}, page)
    assert caught.value.retry_after is None


def test_every_error_has_a_retry_after() -> None:
    assert MaxaError("x").retry_after is None
    assert InvalidInputError("field", "bad").retry_after is None
    assert (
        error_for_status(503, operation="ValidateCts", request_id=None, retry_after=3.0).retry_after
        == 3.0
    )
    assert (
        error_for_status(500, operation=None, request_id=None, retry_after=3.0).retry_after is None
    )


# --------------------------------------------------------------------------- bodies


def test_raw_newlines_inside_strings_parse() -> None:
    body = (
        '{"result": {"data": "line one\nline two\ttab\r", "status": {"statusCode": 200}},'
        ' "status": {"statusCode": 200}}'
    )
    assert parse_envelope(200, HEADERS, body.encode()) == "line one\nline two\ttab\r"


@pytest.mark.parametrize("code", [500, 502, 503, 504, 520])
def test_an_html_error_page_is_a_retryable_protocol_error(code: int) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_envelope(code, HEADERS, HTML, operation=OPERATION)
    error = caught.value
    assert type(error) is ProtocolError
    assert (error.status, error.operation, error.request_id) == (code, OPERATION, "req-77")
    assert error.retryable is True
    assert f"HTTP {code}" in str(error) and "not JSON" in str(error)


@pytest.mark.parametrize("body", [HTML, b"", b"\xff\xfe\x00garbage", b"OK"])
def test_a_non_json_200_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_envelope(200, HEADERS, body)
    assert caught.value.status == 200
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, ForbiddenError),
        (404, NotFoundError),
        (410, HttpsRequiredError),
        (499, ServiceError),
    ],
)
def test_a_typed_status_keeps_its_meaning_behind_a_proxy_page(
    code: int, cls: type[MaxaError]
) -> None:
    with pytest.raises(cls) as caught:
        parse_envelope(code, HEADERS, HTML, operation=OPERATION)
    assert type(caught.value) is cls and caught.value.status == code


@pytest.mark.parametrize("body", [b"[]", b'"data"', b"42", b"null", b'{"result": [1]}', b"{}"])
def test_json_of_the_wrong_shape_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_envelope(200, HEADERS, body, operation=OPERATION)
    assert (caught.value.operation, caught.value.request_id) == (OPERATION, "req-77")


def test_success_without_data_is_a_protocol_error() -> None:
    for body in (envelope(None), envelope(None, inner=200), b'{"result": {"data": null}}'):
        with pytest.raises(ProtocolError, match="no 'data'"):
            parse_envelope(200, HEADERS, body)


def test_request_id_header_is_case_insensitive() -> None:
    for name in ("requestId", "requestid", "RequestId", "REQUESTID"):
        assert header({name: "abc"}, "requestId") == "abc"
        with pytest.raises(NotFoundError) as caught:
            parse_envelope(200, {name: "abc"}, envelope(None, inner=404))
        assert caught.value.request_id == "abc"
    assert header({}, "requestId") is None


# --------------------------------------------------------------------------- one classifier


def test_the_tree_has_a_config_error_and_a_client_limit_error() -> None:
    assert issubclass(ConfigError, InvalidInputError) and issubclass(ConfigError, ValueError)
    assert issubclass(ClientLimitError, RateLimitedError)
    error = ClientLimitError("cap")
    assert error.status is None and error.retryable is False


@pytest.mark.parametrize("code", [500, 502, 503, 504, 520])
def test_the_statuses_a_proxy_writes_pages_for_are_marked_in_the_table(code: int) -> None:
    assert STATUS_TABLE[code].proxy_page is True
    assert STATUS_TABLE[code].retryable is True


def test_other_statuses_keep_their_meaning_behind_a_page() -> None:
    for code, rule in STATUS_TABLE.items():
        if code not in (500, 502, 503, 504, 520):
            assert rule.proxy_page is False, code
    assert rule_for_status(501).proxy_page is False  # an unknown 5xx is still the gateway
    assert rule_for_status(418).proxy_page is False
    assert rule_for_status(302).proxy_page is True  # not an answer of the gateway's


@pytest.mark.parametrize(("code", "retryable"), [(302, False), (501, True), (599, True)])
def test_statuses_the_guide_does_not_list_read_by_class_behind_a_page(
    code: int, retryable: bool
) -> None:
    with pytest.raises(MaxaError) as caught:
        parse_envelope(code, HEADERS, HTML, operation=OPERATION)
    assert caught.value.status == code
    assert caught.value.retryable is retryable
    assert type(caught.value) is (ProtocolError if code < 400 else ServiceError)


def test_the_token_endpoint_reads_oauth_errors_through_its_table() -> None:
    assert set(TOKEN_STATUS_TABLE) == {400, 401}
    for error in REJECTED_GRANT_ERRORS:
        for status in (200, 400, 403, 429, 503):
            assert rule_for_token_answer(status, error).error is AuthenticationError
    for status in (400, 401):
        rule = rule_for_token_answer(status, "unsupported_grant_type")
        assert rule.error is AuthenticationError and rule.retryable is False
    # an OAuth error that rejects nothing reads by its status, as any other answer
    assert rule_for_token_answer(503, "server_error") == STATUS_TABLE[503]
    assert rule_for_token_answer(429, "slow_down") == STATUS_TABLE[429]
    assert rule_for_token_answer(200, "server_error").error is None
    # no OAuth error: the status table alone (a bare 400 is bad input)
    assert rule_for_token_answer(400) == STATUS_TABLE[400]
    assert rule_for_token_answer(401) == STATUS_TABLE[401]


def test_token_answer_errors() -> None:
    rejected = error_for_token_answer(
        400, oauth_error="invalid_grant", description="Bad credentials", request_id="t-9"
    )
    assert type(rejected) is AuthenticationError
    assert (
        rejected.message == "the token endpoint rejected the grant (invalid_grant: Bad credentials)"
    )
    assert (rejected.status, rejected.operation, rejected.request_id) == (400, "token", "t-9")
    limited = error_for_token_answer(429, oauth_error=None, retry_after=4.0)
    assert isinstance(limited, RateLimitedError) and limited.retry_after == 4.0
    assert limited.operation == "token" and limited.retryable is True
    down = error_for_token_answer(503, oauth_error="server_error")
    assert type(down) is ServiceError and down.retryable is True
