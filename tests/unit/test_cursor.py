"""Search cursors (HS256 JWT, secret "resonate") and the Go-compatible JSON encoder behind them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time

import pytest

from resonate.core import gojson
from resonate.core.cursor import CursorError, decode_cursor, encode_promise_cursor, encode_schedule_cursor

VERIFIED_CURSOR = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJOZXh0Ijp7ImlkIjoiKiIsInN0YXRlcyI6WyJQRU5ESU5HIl0sInRhZ3MiOnt9LCJsaW1pdCI6MTAsInNvcnRJZCI6MTAwfX0"
    ".XKusWO-Jl4v7QVIwh5Pn3oIElBvtpf0VPOLJkXPvQLk"
)
HS256_HEADER = {"alg": "HS256", "typ": "JWT"}
HEADER_SEGMENT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
ALL_STATES = ["PENDING", "RESOLVED", "REJECTED", "REJECTED_TIMEDOUT", "REJECTED_CANCELED"]


def b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def as_json(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def signed(header_segment: str, claims_segment: str, secret: bytes = b"resonate", digest=hashlib.sha256) -> str:
    """A token over raw segments, signed independently of the module under test."""
    signing_input = f"{header_segment}.{claims_segment}"
    signature = hmac.new(secret, signing_input.encode("utf-8"), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def forge(header, claims, secret: bytes = b"resonate", digest=hashlib.sha256) -> str:
    """A token from a header and claims given as dicts or JSON text."""
    return signed(b64(as_json(header)), b64(as_json(claims)), secret, digest)


def payload_of(token: str) -> str:
    segment = token.split(".")[1]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode("utf-8")


# --------------------------------------------------------------------------------------------
# Encoding


def test_verified_vector_round_trips_byte_for_byte():
    assert encode_promise_cursor("*", ["PENDING"], {}, 10, 100) == VERIFIED_CURSOR
    assert decode_cursor(VERIFIED_CURSOR) == {
        "id": "*",
        "states": ["PENDING"],
        "tags": {},
        "limit": 10,
        "sortId": 100,
    }


def test_promise_cursor_payload_keeps_struct_order_and_sorts_tags():
    token = encode_promise_cursor("a*", ALL_STATES, {"z": "1", "a": "2", "m": "3"}, 100, 7)
    assert token.split(".")[0] == "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    assert payload_of(token) == (
        '{"Next":{"id":"a*","states":["PENDING","RESOLVED","REJECTED","REJECTED_TIMEDOUT","REJECTED_CANCELED"],'
        '"tags":{"a":"2","m":"3","z":"1"},"limit":100,"sortId":7}}'
    )
    assert token == signed(HEADER_SEGMENT, b64(payload_of(token)))


def test_schedule_cursor_payload():
    token = encode_schedule_cursor("sched-*", {"b": "2", "a": "1"}, 5, 42)
    assert payload_of(token) == '{"Next":{"id":"sched-*","tags":{"a":"1","b":"2"},"limit":5,"sortId":42}}'
    assert token == signed(HEADER_SEGMENT, b64(payload_of(token)))
    expected = {"id": "sched-*", "states": None, "tags": {"a": "1", "b": "2"}, "limit": 5, "sortId": 42}
    assert decode_cursor(token) == expected


def test_cursor_payload_uses_go_escaping():
    token = encode_promise_cursor("<a&b>\u2028é", ["PENDING"], {"k<": "v>"}, 1, 2)
    assert payload_of(token) == (
        '{"Next":{"id":"\\u003ca\\u0026b\\u003e\\u2028é","states":["PENDING"],'
        '"tags":{"k\\u003c":"v\\u003e"},"limit":1,"sortId":2}}'
    )
    assert decode_cursor(token)["id"] == "<a&b>\u2028é"


def test_none_tags_and_states_encode_as_null():
    token = encode_promise_cursor("x", None, None, 3, 4)
    assert payload_of(token) == '{"Next":{"id":"x","states":null,"tags":null,"limit":3,"sortId":4}}'


# --------------------------------------------------------------------------------------------
# Decoding: golang-jwt v5 errors, in the order it checks things


GOOD_HEADER = b64(json.dumps(HS256_HEADER, separators=(",", ":")))
GOOD_CLAIMS = b64('{"Next":{"id":"x","limit":1}}')
SEGMENTS = "token is malformed: token contains an invalid number of segments"
HEADER_B64 = "token is malformed: could not base64 decode header: "
HEADER_JSON = "token is malformed: could not JSON decode header: "
CLAIM_B64 = "token is malformed: could not base64 decode claim: "
CLAIM_JSON = "token is malformed: could not JSON decode claim: "
SIGNATURE_B64 = "token is malformed: could not base64 decode signature: "
BAD_SIGNATURE = "token signature is invalid: "


def with_header(header_json: str, claims_segment: str = "e30") -> str:
    return f"{b64(header_json)}.{claims_segment}."


def with_claims(claims_json: str) -> str:
    return f"{GOOD_HEADER}.{b64(claims_json)}."


def with_raw_claims(claims: bytes) -> str:
    return f"{GOOD_HEADER}.{b64(claims)}."


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", SEGMENTS),
        ("abc", SEGMENTS),
        ("a.b", SEGMENTS),
        ("a.b.c.d", SEGMENTS),
        (VERIFIED_CURSOR + ".", SEGMENTS),
        ("!!.e30.", HEADER_B64 + "illegal base64 data at input byte 0"),
        ("e30=.e30.", HEADER_B64 + "illegal base64 data at input byte 3"),
        ("e30ab.e30.", HEADER_B64 + "illegal base64 data at input byte 4"),
        ("eé30.e30.", HEADER_B64 + "illegal base64 data at input byte 1"),
        (with_header("x"), HEADER_JSON + "invalid character 'x' looking for beginning of value"),
        (with_header("{"), HEADER_JSON + "unexpected end of JSON input"),
        (with_header("{}x"), HEADER_JSON + "invalid character 'x' after top-level value"),
        (with_header("[]"), HEADER_JSON + "json: cannot unmarshal array into Go value of type map[string]interface {}"),
        (f"{GOOD_HEADER}.e30*.", CLAIM_B64 + "illegal base64 data at input byte 3"),
        (with_claims("{,}"), CLAIM_JSON + "invalid character ',' looking for beginning of object key string"),
        (with_claims('{"a" 1}'), CLAIM_JSON + "invalid character '1' after object key"),
        (with_claims('{"a":1 2}'), CLAIM_JSON + "invalid character '2' after object key:value pair"),
        (with_claims("[1 2]"), CLAIM_JSON + "invalid character '2' after array element"),
        (with_claims('{"exp":NaN}'), CLAIM_JSON + "invalid character 'N' looking for beginning of value"),
        # texts below were produced by Go's encoding/json through golang-jwt v5.2.3
        (with_header("nope"), HEADER_JSON + "invalid character 'o' in literal null (expecting 'u')"),
        (with_header("tru"), HEADER_JSON + "invalid character ' ' in literal true (expecting 'e')"),
        (with_claims('{"a":-x}'), CLAIM_JSON + "invalid character 'x' in numeric literal"),
        (with_claims('{"a":1.}'), CLAIM_JSON + "invalid character '}' after decimal point in numeric literal"),
        (with_claims("1e"), CLAIM_JSON + "invalid character ' ' in exponent of numeric literal"),
        (with_claims("-Infinity"), CLAIM_JSON + "invalid character 'I' in numeric literal"),
        (with_claims('{"Next":{}} 1.5.3'), CLAIM_JSON + "invalid character '1' after top-level value"),
        (with_claims('{"a":"\\q"}'), CLAIM_JSON + "invalid character 'q' in string escape code"),
        (with_claims('{"a":"\\u12x4"}'), CLAIM_JSON + "invalid character 'x' in \\u hexadecimal character escape"),
        (with_claims('"\\'), CLAIM_JSON + "invalid character ' ' in string escape code"),
        (with_claims('{"a":"\x01"}'), CLAIM_JSON + "invalid character '\\x01' in string literal"),
        (with_claims('{"a":'), CLAIM_JSON + "unexpected end of JSON input"),
        (with_raw_claims(b"\xc3\xa9"), CLAIM_JSON + "invalid character '\u00c3' looking for beginning of value"),
        (with_raw_claims(b'{"a":\x85}'), CLAIM_JSON + "invalid character '\\u0085' looking for beginning of value"),
        (with_header("{}"), "token is unverifiable: signing method (alg) is unspecified"),
        (with_header("null"), "token is unverifiable: signing method (alg) is unspecified"),
        (with_header('{"alg":256}'), "token is unverifiable: signing method (alg) is unspecified"),
        (with_header('{"alg":"XX256"}'), "token is unverifiable: signing method (alg) is unavailable"),
        (with_header('{"alg":"hs256"}'), "token is unverifiable: signing method (alg) is unavailable"),
        (f"{GOOD_HEADER}.{GOOD_CLAIMS}.a=", SIGNATURE_B64 + "illegal base64 data at input byte 1"),
        (f"{GOOD_HEADER}.{GOOD_CLAIMS}.", BAD_SIGNATURE + "signature is invalid"),
        (VERIFIED_CURSOR[:-1] + "A", BAD_SIGNATURE + "signature is invalid"),
        (
            with_header('{"alg":"none"}', GOOD_CLAIMS),
            BAD_SIGNATURE + "token is unverifiable: 'none' signature type is not allowed",
        ),
        (
            with_header('{"alg":"RS256"}', GOOD_CLAIMS),
            BAD_SIGNATURE + "key is of invalid type: RSA verify expects *rsa.PublicKey",
        ),
        (
            with_header('{"alg":"ES256"}', GOOD_CLAIMS),
            BAD_SIGNATURE + "key is of invalid type: ECDSA verify expects *ecdsa.PublicKey",
        ),
    ],
)
def test_decode_errors_match_golang_jwt(token, message):
    with pytest.raises(CursorError) as raised:
        decode_cursor(token)
    assert str(raised.value) == message


def test_claims_are_decoded_before_the_signature_is_checked():
    token = f"{GOOD_HEADER}.{b64('[]')}.bad-signature"
    with pytest.raises(CursorError, match="^" + CLAIM_JSON + "json: cannot unmarshal array"):
        decode_cursor(token)


def test_token_signed_with_another_secret_is_rejected():
    with pytest.raises(CursorError, match="^token signature is invalid: signature is invalid$"):
        decode_cursor(forge(HS256_HEADER, {"Next": {"id": "x"}}, secret=b"not-resonate"))


def test_forged_cursor_with_the_public_key_is_accepted_like_the_reference():
    token = forge(HS256_HEADER, {"Next": {"id": "forged", "limit": 100000, "sortId": 1}})
    assert decode_cursor(token) == {"id": "forged", "states": None, "tags": None, "limit": 100000, "sortId": 1}


@pytest.mark.parametrize(("alg", "digest"), [("HS384", hashlib.sha384), ("HS512", hashlib.sha512)])
def test_other_hmac_algorithms_verify_with_the_same_secret(alg, digest):
    token = forge({"alg": alg}, {"Next": {"id": "x"}}, digest=digest)
    assert decode_cursor(token)["id"] == "x"
    with pytest.raises(CursorError, match="signature is invalid"):
        decode_cursor(forge({"alg": alg}, {"Next": {"id": "x"}}))  # signed with SHA-256 instead


def test_newlines_inside_segments_are_skipped_like_go_base64():
    claims = b64('{"Next":{"id":"crlf"}}')
    token = signed(GOOD_HEADER[:5] + "\r\n" + GOOD_HEADER[5:], claims[:3] + "\n" + claims[3:])
    assert decode_cursor(token)["id"] == "crlf"


# --------------------------------------------------------------------------------------------
# Registered claims: exp / nbf validated, others type-checked


def test_expiry_and_not_before_are_checked():
    now = int(time.time())
    assert decode_cursor(forge(HS256_HEADER, {"exp": now + 3600, "nbf": now - 10, "Next": {"id": "ok"}}))["id"] == "ok"
    with pytest.raises(CursorError) as raised:
        decode_cursor(forge(HS256_HEADER, {"exp": now - 10, "Next": {"id": "x"}}))
    assert str(raised.value) == "token has invalid claims: token is expired"
    with pytest.raises(CursorError) as raised:
        decode_cursor(forge(HS256_HEADER, {"nbf": now + 3600, "Next": {"id": "x"}}))
    assert str(raised.value) == "token has invalid claims: token is not valid yet"
    with pytest.raises(CursorError) as raised:
        decode_cursor(forge(HS256_HEADER, {"exp": 1.5, "nbf": now + 3600, "Next": {"id": "x"}}))
    assert str(raised.value) == "token has invalid claims: token is expired\ntoken is not valid yet"
    # a numeric string is a valid NumericDate, and iat is not validated
    with pytest.raises(CursorError, match="token is expired"):
        decode_cursor(forge(HS256_HEADER, {"exp": "100", "Next": {"id": "x"}}))
    assert decode_cursor(forge(HS256_HEADER, {"iat": now + 99999, "Next": {"id": "x"}}))["id"] == "x"


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": "soon", "Next": {}}, "could not JSON decode claim: could not parse NumericData"),
        ({"nbf": True, "Next": {}}, "could not JSON decode claim: could not parse NumericData"),
        ('{"exp":1e999,"Next":{}}', "could not convert json number value to float"),
        ({"aud": 5, "Next": {}}, "could not JSON decode claim: invalid type for claim"),
        ({"aud": ["a", 1], "Next": {}}, "could not JSON decode claim: invalid type for claim"),
        ({"iss": 5, "Next": {}}, "could not JSON decode claim: json: cannot unmarshal number"),
        ({"Next": {"limit": 1.5}}, "cannot unmarshal number 1.5 into Go struct field Claims.Next.limit of type int"),
        ({"Next": {"limit": "10"}}, "cannot unmarshal string into Go struct field Claims.Next.limit of type int"),
        ('{"Next":{"sortId":9223372036854775808}}', "cannot unmarshal number 9223372036854775808"),
        ({"Next": {"id": 5}}, "cannot unmarshal number into Go struct field Claims.Next.id of type string"),
        ({"Next": {"tags": {"k": 1}}}, "cannot unmarshal number into Go struct field Claims.Next.tags of type string"),
        ({"Next": {"tags": []}}, "cannot unmarshal array into Go struct field Claims.Next.tags"),
        ({"Next": {"states": ["nope"]}}, "could not JSON decode claim: invalid state 'nope'"),
        ({"Next": {"states": [None]}}, "could not JSON decode claim: invalid state ''"),
        ({"Next": {"states": [1]}}, "json: cannot unmarshal number into Go value of type string"),
        ({"Next": {"states": "PENDING"}}, "cannot unmarshal string into Go struct field Claims.Next.states"),
        ({"Next": 5}, "cannot unmarshal number into Go struct field Claims.Next"),
        ("5", "json: cannot unmarshal number into Go value of type t_api.Claims"),
    ],
)
def test_claim_type_errors_are_malformed_tokens(claims, message):
    with pytest.raises(CursorError) as raised:
        decode_cursor(forge(HS256_HEADER, claims))
    assert str(raised.value).startswith(CLAIM_JSON)
    assert message in str(raised.value)


@pytest.mark.parametrize("claims", [{}, {"Next": None}, "null", {"next": None}])
def test_cursor_without_next_request_is_refused(claims):
    with pytest.raises(CursorError, match="^token has invalid claims: cursor has no Next request$"):
        decode_cursor(forge(HS256_HEADER, claims))


# --------------------------------------------------------------------------------------------
# The Next request is filled the way Go's decoder fills the struct


def test_next_keys_match_case_insensitively_and_unknown_keys_are_dropped():
    claims = {
        "NEXT": {
            "ID": "p-*",
            "States": ["pending", "Rejected_Timedout"],
            "TAGS": {"k": "v", "n": None},
            "Limit": 3,
            "SORTID": 7,
            "extra": [1, 2],
        },
        "other": {"ignored": True},
    }
    assert decode_cursor(forge(HS256_HEADER, claims)) == {
        "id": "p-*",
        "states": ["PENDING", "REJECTED_TIMEDOUT"],
        "tags": {"k": "v", "n": ""},
        "limit": 3,
        "sortId": 7,
    }


def test_repeated_next_objects_are_merged_and_later_values_win():
    raw = '{"Next":{"id":"a","tags":{"x":"1"},"limit":2},"next":{"tags":{"y":"2"},"id":"b","sortId":null}}'
    assert decode_cursor(forge(HS256_HEADER, raw)) == {
        "id": "b",
        "states": None,
        "tags": {"x": "1", "y": "2"},
        "limit": 2,
        "sortId": None,
    }


def test_nulls_leave_defaults_and_strings_are_sanitised():
    raw = '{"Next":{"id":null,"limit":null,"states":[],"tags":{"\\ud800":"\\udfff"}}}'
    assert decode_cursor(forge(HS256_HEADER, raw)) == {
        "id": "",
        "states": [],
        "tags": {"\ufffd": "\ufffd"},
        "limit": 0,
        "sortId": None,
    }


def test_invalid_utf8_in_claims_becomes_replacement_characters():
    claims_segment = b64(b'{"Next":{"id":"a\xffb\xe2\x82"}}')
    token = signed(GOOD_HEADER, claims_segment)
    assert decode_cursor(token)["id"] == "a\ufffdb\ufffd\ufffd"


# --------------------------------------------------------------------------------------------
# Robustness


def test_arbitrary_strings_only_ever_raise_cursor_error():
    rng = random.Random(2024)
    alphabet = "eyJ0.A-_=\r\n{}\"é\x00\ud800" + "abcdefghijklmnopqrstuvwxyz0123456789"
    samples = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(60))) for _ in range(3000)]
    # mutations of a valid token exercise the later stages (JSON, alg, signature)
    for _ in range(3000):
        chars = list(VERIFIED_CURSOR)
        for _ in range(rng.randint(1, 3)):
            chars[rng.randrange(len(chars))] = rng.choice(alphabet)
        samples.append("".join(chars))
    # random JSON-ish claims with a valid signature exercise the claim decoding
    fragments = ["{", "}", "[", "]", ":", ",", '"Next"', '"id"', '"exp"', '"limit"', '"tags"', '"states"']
    fragments += ["1", "1.5", "null", "true", '"x"', "-", "e9"]
    for _ in range(3000):
        samples.append(forge(HS256_HEADER, "".join(rng.choice(fragments) for _ in range(rng.randrange(12)))))
    decoded = 0
    for sample in samples:
        try:
            result = decode_cursor(sample)
        except CursorError:
            continue
        assert isinstance(result, dict)
        decoded += 1
    assert decoded >= 1  # the forged JSON sometimes forms a valid cursor


@pytest.mark.parametrize("token", [None, 5, b"bytes"])
def test_non_string_input_raises_cursor_error(token):
    with pytest.raises(CursorError):
        decode_cursor(token)  # type: ignore[arg-type]


def test_cursor_error_is_a_value_error():
    assert issubclass(CursorError, ValueError)


# --------------------------------------------------------------------------------------------
# gojson.dumps


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ({"b": 1, "a": [True, False, None]}, '{"b":1,"a":[true,false,null]}'),  # insertion order kept
        ("<script>&</script>", '"\\u003cscript\\u003e\\u0026\\u003c/script\\u003e"'),
        ("\u2028\u2029", '"\\u2028\\u2029"'),
        ("é✓😀", '"é✓😀"'),
        ("\b\f\n\r\t", '"\\b\\f\\n\\r\\t"'),
        ("\x00\x01\x1f", '"\\u0000\\u0001\\u001f"'),
        ("\x7f", '"\x7f"'),
        ('quote " backslash \\ slash /', '"quote \\" backslash \\\\ slash /"'),
        ("bad \udc80 surrogate", '"bad \ufffd surrogate"'),
        (b"\x00\xff\x10", '"AP8Q"'),
        (bytearray(b"hi"), '"aGk="'),
        ({"k<": "v"}, '{"k\\u003c":"v"}'),
        ([], "[]"),
        ({}, "{}"),
        (-9223372036854775808, "-9223372036854775808"),
    ],
)
def test_gojson_dumps(value, encoded):
    assert gojson.dumps(value) == encoded


@pytest.mark.parametrize("value", [float("nan"), float("inf"), object()])
def test_gojson_refuses_values_go_cannot_encode(value):
    with pytest.raises((ValueError, TypeError)):
        gojson.dumps(value)
