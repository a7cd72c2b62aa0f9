"""Search cursors: HS256 JWTs signed with the public secret ``resonate``, as the reference makes them.

The reference (``internal/kernel/t_api/cursor.go``, golang-jwt v5) signs ``Claims{RegisteredClaims;
Next *Request}``; all registered claims are ``omitempty`` so the payload is just ``{"Next":{...}}``,
encoded by Go ``encoding/json``.  Decoding follows golang-jwt's ``ParseWithClaims`` step by step
(segments, header, claims, alg, signature, exp/nbf) and reproduces its error texts, which the API
returns verbatim as the 400 detail.  Error texts that come from Go's JSON decoder (type mismatches,
syntax errors) are close approximations.

``decode_cursor`` returns the decoded ``Next`` request normalised the way Go's decoder fills the
struct: keys matched case-insensitively, unknown keys dropped, state names upper-cased, and every
field present (``id`` "", ``states`` None, ``tags`` None, ``limit`` 0, ``sortId`` None when absent).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import time
from typing import Any, Iterable

from resonate.core import gojson
from resonate.core.model import INT64_MAX, INT64_MIN

__all__ = ["CursorError", "encode_promise_cursor", "encode_schedule_cursor", "decode_cursor"]

_SECRET = b"resonate"
_HEADER_SEGMENT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"  # {"alg":"HS256","typ":"JWT"}
_STATES = ("PENDING", "RESOLVED", "REJECTED", "REJECTED_TIMEDOUT", "REJECTED_CANCELED")

_MALFORMED = "token is malformed"
_UNVERIFIABLE = "token is unverifiable"
_SIGNATURE_INVALID = "token signature is invalid"
_INVALID_CLAIMS = "token has invalid claims"


class CursorError(ValueError):
    """The cursor cannot be decoded; the message is the text golang-jwt would give."""


# --------------------------------------------------------------------------------------------
# Encoding


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _sign(claims: dict[str, Any]) -> str:
    signing_input = f"{_HEADER_SEGMENT}.{_b64url(gojson.dumps(claims).encode('utf-8'))}"
    signature = hmac.new(_SECRET, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def _go_map(tags: dict[str, str] | None) -> dict[str, str] | None:
    # Go writes map keys sorted by bytes; code point order of str is the same order.
    return None if tags is None else dict(sorted(tags.items()))


def encode_promise_cursor(
    id: str, states: Iterable[str] | None, tags: dict[str, str] | None, limit: int, sort_id: int
) -> str:
    """Cursor for the next page of a promise search (``states`` in state-set order)."""
    next_request = {
        "id": id,
        "states": None if states is None else list(states),
        "tags": _go_map(tags),
        "limit": limit,
        "sortId": sort_id,
    }
    return _sign({"Next": next_request})


def encode_schedule_cursor(id: str, tags: dict[str, str] | None, limit: int, sort_id: int) -> str:
    """Cursor for the next page of a schedule search."""
    return _sign({"Next": {"id": id, "tags": _go_map(tags), "limit": limit, "sortId": sort_id}})


# --------------------------------------------------------------------------------------------
# base64 (Go base64.RawURLEncoding, not strict)

_B64URL_TEXT = re.compile(r"[A-Za-z0-9_-]*")
_B64URL_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _decode_segment(segment: str) -> bytes:
    """Decode like Go: CR/LF skipped, no padding, error names the offending byte offset."""
    if _B64URL_TEXT.fullmatch(segment) and len(segment) % 4 != 1:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    data = segment.encode("utf-8", "surrogatepass")
    kept = bytearray()
    for offset, byte in enumerate(data):
        if byte in (0x0A, 0x0D):
            continue
        if byte not in _B64URL_BYTES:
            raise ValueError(f"illegal base64 data at input byte {offset}")
        kept.append(byte)
    if len(kept) % 4 == 1:
        raise ValueError(f"illegal base64 data at input byte {len(data) - 1}")
    try:
        return base64.urlsafe_b64decode(bytes(kept) + b"=" * (-len(kept) % 4))
    except binascii.Error as exc:  # unreachable after the checks above; kept as a guard
        raise ValueError(str(exc)) from None


# --------------------------------------------------------------------------------------------
# JSON decoding with Go's acceptance rules


class _Pairs(list):
    """A JSON object as its (key, value) pairs, in document order, duplicates kept."""


class _FloatLiteral(str):
    """A JSON number written with a fraction or exponent (Go refuses it for integer fields)."""


class _IntLiteral(str):
    """A JSON integer literal, kept as text so huge values cannot hit Python's int limits."""


class _JsonTypeError(Exception):
    """A value of the wrong JSON kind for its Go field; Go reports the first and carries on."""


def _reject_constant(name: str) -> Any:
    # Python accepts NaN, Infinity and -Infinity; Go stops at their first character.
    if name.startswith("-"):
        raise ValueError("invalid character 'I' in numeric literal")
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


_SURROGATES = re.compile("[\ud800-\udfff]")


def _clean(text: str) -> str:
    # Invalid UTF-8 (decoded with surrogateescape) and lone "\udXXX" escapes become U+FFFD, as in Go.
    return _SURROGATES.sub("\ufffd", text)


def _quote_byte(char: str) -> str:
    """Go's quoteChar of the offending byte: the first UTF-8 byte of ``char``, read as a rune."""
    byte = char.encode("utf-8", "surrogateescape")[0]
    if byte == 0x27:
        return "'\\''"
    if byte == 0x22:
        return "'\"'"
    escapes = {0x07: "\\a", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x0B: "\\v", 0x5C: "\\\\"}
    if byte in escapes:
        return f"'{escapes[byte]}'"
    if chr(byte).isprintable():
        return f"'{chr(byte)}'"
    if byte < 0x80:
        return f"'\\x{byte:02x}'"
    return f"'\\u{byte:04x}'"


def _enclosing_container(document: str, position: int) -> str:
    """'{' or '[' enclosing ``position`` (ignoring string contents), '' at top level."""
    stack: list[str] = []
    in_string = escaped = False
    for char in document[:position]:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
        elif char in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


_LITERALS = {"n": "null", "t": "true", "f": "false"}


def _quote_at(document: str, position: int) -> str:
    # At the end of input Go's scanner is fed a space, so errors inside a token name ' '.
    return _quote_byte(document[position]) if position < len(document) else "' '"


def _number_or_literal_error(document: str, position: int, value_expected: bool) -> str | None:
    """Go's message when the error is inside a literal (``nul``) or a number (``-x``, ``1.``, ``1e``)."""
    if position >= len(document):
        return None
    first = document[position]
    if value_expected and first in _LITERALS:
        literal = _LITERALS[first]
        for index, expected in enumerate(literal):
            if position + index >= len(document) or document[position + index] != expected:
                found, wanted = _quote_at(document, position + index), _quote_byte(expected)
                return f"invalid character {found} in literal {literal} (expecting {wanted})"
        return None
    number_start = position
    while number_start and document[number_start - 1] in "0123456789.eE+-":
        number_start -= 1
    number = document[number_start:position]
    if value_expected and first == "-":
        context = "in numeric literal"
    elif first == "." and number and number[-1].isdigit() and not any(c in number for c in ".eE"):
        context = "after decimal point in numeric literal"
    elif first in "eE" and number and number[-1].isdigit() and not any(c in number for c in "eE"):
        context = "in exponent of numeric literal"
        if position + 1 < len(document) and document[position + 1] in "+-":
            position += 1
    else:
        return None
    return f"invalid character {_quote_at(document, position + 1)} {context}"


def _unterminated_string_error(document: str, start: int) -> str:
    """Go's message for input that ends inside the string opened at ``start``."""
    index = start + 1
    while index < len(document):
        if document[index] != "\\":
            index += 1
            continue
        if index + 1 >= len(document):
            return "invalid character ' ' in string escape code"
        if document[index + 1] == "u" and len(document) - index < 6:
            return "invalid character ' ' in \\u hexadecimal character escape"
        index += 2
    return "unexpected end of JSON input"


def _go_syntax_error(document: str, error: json.JSONDecodeError) -> str:
    if error.msg.startswith("Unterminated string"):
        return _unterminated_string_error(document, error.pos)
    position = error.pos
    if error.msg.startswith("Invalid \\escape"):
        position += 1  # Go blames the character after the backslash
    elif error.msg.startswith("Invalid \\uXXXX"):
        digits = document[position + 2 : position + 6]
        position += 2 + next((i for i, c in enumerate(digits) if c not in "0123456789abcdefABCDEF"), len(digits))
        return f"invalid character {_quote_at(document, position)} in \\u hexadecimal character escape"
    number_or_literal = _number_or_literal_error(document, position, error.msg == "Expecting value")
    if number_or_literal is not None:
        return number_or_literal
    if position >= len(document):
        return "unexpected end of JSON input"
    char = _quote_byte(document[position])
    if error.msg == "Expecting value":
        return f"invalid character {char} looking for beginning of value"
    if error.msg.startswith("Expecting property name"):
        return f"invalid character {char} looking for beginning of object key string"
    if error.msg == "Expecting ':' delimiter":
        return f"invalid character {char} after object key"
    if error.msg == "Expecting ',' delimiter":
        where = "object key:value pair" if _enclosing_container(document, error.pos) == "{" else "array element"
        return f"invalid character {char} after {where}"
    if error.msg == "Extra data":
        return f"invalid character {char} after top-level value"
    if error.msg.startswith("Invalid control character"):
        return f"invalid character {char} in string literal"
    if error.msg.startswith("Invalid \\"):
        return f"invalid character {char} in string escape code"
    return f"invalid character {char} looking for beginning of value"


def _parse_json(raw: bytes) -> Any:
    """Parse like Go's encoding/json would accept; raises ValueError with a Go-style message."""
    document = raw.decode("utf-8", "surrogateescape")
    try:
        return json.loads(
            document,
            object_pairs_hook=_Pairs,
            parse_float=_FloatLiteral,
            parse_int=_IntLiteral,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError as exc:
        raise ValueError(_go_syntax_error(document, exc)) from None
    except RecursionError:
        raise ValueError("exceeded max depth") from None


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (_IntLiteral, _FloatLiteral)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, _Pairs):
        return "object"
    return "array"


def _type_error(value: Any, field: str, go_type: str) -> _JsonTypeError:
    return _JsonTypeError(f"json: cannot unmarshal {_json_kind(value)} into Go struct field {field} of type {go_type}")


def _int64(value: Any, field: str, go_type: str) -> int:
    if isinstance(value, _IntLiteral) and len(value) <= 20:
        number = int(value)
        if INT64_MIN <= number <= INT64_MAX:
            return number
    if isinstance(value, (_IntLiteral, _FloatLiteral)):
        # Go names the literal when a number does not fit an integer field.
        raise _JsonTypeError(f"json: cannot unmarshal number {value} into Go struct field {field} of type {go_type}")
    raise _type_error(value, field, go_type)


# --------------------------------------------------------------------------------------------
# Claims


def _numeric_date(value: Any) -> int | None:
    """jwt.NumericDate: seconds (truncated) or None; number or numeric string accepted."""
    if value is None:
        return None
    if isinstance(value, (_IntLiteral, _FloatLiteral)):
        literal = str(value)
    elif isinstance(value, str) and re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", value):
        literal = value
    elif _json_kind(value) == "string":
        quoted = json.dumps(json.dumps(value, ensure_ascii=False), ensure_ascii=False)
        raise ValueError(
            f"could not parse NumericData: json: invalid number literal, trying to unmarshal {quoted} into Number"
        )
    else:
        raise ValueError(
            f"could not parse NumericData: json: cannot unmarshal {_json_kind(value)} into Go value of type json.Number"
        )
    seconds = float(literal)
    if math.isinf(seconds):
        raise ValueError(
            f'could not convert json number value to float: strconv.ParseFloat: parsing "{literal}": value out of range'
        )
    if not -9.223372036854775808e18 <= seconds < 9.223372036854775808e18:
        return INT64_MIN  # Go's float-to-int64 conversion overflows to the minimum on amd64
    return math.floor(seconds)  # NumericDate truncates to whole seconds, rounding down


def _claim_strings(value: Any) -> None:
    """jwt.ClaimStrings (``aud``): a string, a list of strings or null."""
    if _json_kind(value) in ("null", "string"):
        return
    if _json_kind(value) == "array" and all(_json_kind(item) == "string" for item in value):
        return
    raise ValueError("invalid type for claim")


def _decode_states(value: Any) -> list[str] | None:
    if value is None:
        return None
    if _json_kind(value) != "array":
        raise _type_error(value, "Claims.Next.states", "[]promise.State")
    states = []
    for item in value:
        kind = _json_kind(item)
        if kind not in ("string", "null"):
            # promise.State.UnmarshalJSON fails, which aborts decoding at once.
            raise ValueError(f"json: cannot unmarshal {kind} into Go value of type string")
        name = "" if item is None else _clean(item)
        state = name.upper()
        if state not in _STATES:
            raise ValueError(f"invalid state '{name}'")
        states.append(state)
    return states


def _decode_tags(value: Any, existing: dict[str, str] | None, errors: list[_JsonTypeError]) -> dict[str, str] | None:
    if value is None:
        return None
    if _json_kind(value) != "object":
        errors.append(_type_error(value, "Claims.Next.tags", "map[string]string"))
        return existing
    tags = existing if existing is not None else {}  # Go decodes into the existing map
    for key, item in value:
        kind = _json_kind(item)
        if kind == "string":
            tags[_clean(key)] = _clean(item)
        elif kind == "null":
            tags[_clean(key)] = ""
        else:
            errors.append(_type_error(item, "Claims.Next.tags", "string"))
    return tags


def _decode_next(value: _Pairs, next_request: dict[str, Any], errors: list[_JsonTypeError]) -> None:
    for key, item in value:
        field = key.casefold()
        if field == "id":
            if _json_kind(item) == "string":
                next_request["id"] = _clean(item)
            elif item is not None:
                errors.append(_type_error(item, "Claims.Next.id", "string"))
        elif field == "states":
            try:
                next_request["states"] = _decode_states(item)
            except _JsonTypeError as exc:
                errors.append(exc)
        elif field == "tags":
            next_request["tags"] = _decode_tags(item, next_request["tags"], errors)
        elif field == "limit":
            if item is not None:
                try:
                    next_request["limit"] = _int64(item, "Claims.Next.limit", "int")
                except _JsonTypeError as exc:
                    errors.append(exc)
        elif field == "sortid":
            if item is None:
                next_request["sortId"] = None
            else:
                try:
                    next_request["sortId"] = _int64(item, "Claims.Next.sortId", "int64")
                except _JsonTypeError as exc:
                    errors.append(exc)


def _decode_claims(claims: Any) -> tuple[dict[str, Any] | None, int | None, int | None]:
    """(Next or None, exp, nbf) from the claims JSON value; raises ValueError like Go's decoder."""
    if claims is None:
        return None, None, None
    if _json_kind(claims) != "object":
        raise ValueError(f"json: cannot unmarshal {_json_kind(claims)} into Go value of type t_api.Claims")
    next_request: dict[str, Any] | None = None
    expires_at = not_before = None
    errors: list[_JsonTypeError] = []
    for key, value in claims:
        field = key.casefold()
        if field == "next":
            if value is None:
                next_request = None
            elif _json_kind(value) == "object":
                if next_request is None:
                    next_request = {"id": "", "states": None, "tags": None, "limit": 0, "sortId": None}
                _decode_next(value, next_request, errors)  # Go decodes into the existing struct
            else:
                errors.append(_type_error(value, "Claims.Next", "t_api.Request"))
        elif field == "exp":
            expires_at = _numeric_date(value)
        elif field == "nbf":
            not_before = _numeric_date(value)
        elif field == "iat":
            _numeric_date(value)  # parsed (and may fail) but not validated by default
        elif field == "aud":
            _claim_strings(value)
        elif field in ("iss", "sub", "jti"):
            if value is not None and _json_kind(value) != "string":
                errors.append(_type_error(value, f"Claims.RegisteredClaims.{field}", "string"))
    if errors:
        raise ValueError(str(errors[0]))
    return next_request, expires_at, not_before


# --------------------------------------------------------------------------------------------
# Decoding

_HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
# Registered golang-jwt methods that cannot verify with an HMAC key, and what they say.
_WRONG_KEY_METHODS = {
    **{alg: "key is of invalid type: RSA verify expects *rsa.PublicKey" for alg in ("RS256", "RS384", "RS512")},
    **{alg: "key is of invalid type: RSA-PSS verify expects *rsa.PublicKey" for alg in ("PS256", "PS384", "PS512")},
    **{alg: "key is of invalid type: ECDSA verify expects *ecdsa.PublicKey" for alg in ("ES256", "ES384", "ES512")},
    "EdDSA": "key is of invalid type: Ed25519 verify expects ed25519.PublicKey",
    "none": "token is unverifiable: 'none' signature type is not allowed",
}


def decode_cursor(token: str) -> dict[str, Any]:
    """Verify ``token`` and return its ``Next`` request; any failure raises CursorError."""
    try:
        return _decode(token)
    except CursorError as exc:
        # Messages may quote client bytes; keep them encodable (invalid UTF-8 shows as U+FFFD).
        raise CursorError(_clean(str(exc))) from None
    except Exception as exc:  # the API must answer 400, never 500, whatever the client sends
        raise CursorError(_clean(f"{_MALFORMED}: {exc}")) from exc


def _decode(token: str) -> dict[str, Any]:
    if not isinstance(token, str):
        raise CursorError(f"{_MALFORMED}: token contains an invalid number of segments")
    parts = token.split(".")
    if len(parts) != 3:
        raise CursorError(f"{_MALFORMED}: token contains an invalid number of segments")
    header_segment, claims_segment, signature_segment = parts

    try:
        header_bytes = _decode_segment(header_segment)
    except ValueError as exc:
        raise CursorError(f"{_MALFORMED}: could not base64 decode header: {exc}") from None
    try:
        header = _parse_json(header_bytes)
        if header is not None and _json_kind(header) != "object":
            kind = _json_kind(header)
            raise ValueError(f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}")
    except ValueError as exc:
        raise CursorError(f"{_MALFORMED}: could not JSON decode header: {exc}") from None

    try:
        claims_bytes = _decode_segment(claims_segment)
    except ValueError as exc:
        raise CursorError(f"{_MALFORMED}: could not base64 decode claim: {exc}") from None
    try:
        next_request, expires_at, not_before = _decode_claims(_parse_json(claims_bytes))
    except ValueError as exc:
        raise CursorError(f"{_MALFORMED}: could not JSON decode claim: {exc}") from None

    alg = None
    for key, value in header or ():
        if key == "alg":  # a Go map lookup: exact key, last duplicate wins
            alg = value
    if _json_kind(alg) != "string":
        raise CursorError(f"{_UNVERIFIABLE}: signing method (alg) is unspecified")
    if alg not in _HMAC_HASHES and alg not in _WRONG_KEY_METHODS:
        raise CursorError(f"{_UNVERIFIABLE}: signing method (alg) is unavailable")

    try:
        signature = _decode_segment(signature_segment)
    except ValueError as exc:
        raise CursorError(f"{_MALFORMED}: could not base64 decode signature: {exc}") from None

    if alg in _WRONG_KEY_METHODS:
        raise CursorError(f"{_SIGNATURE_INVALID}: {_WRONG_KEY_METHODS[alg]}")
    signing_input = f"{header_segment}.{claims_segment}".encode("utf-8", "surrogatepass")
    expected = hmac.new(_SECRET, signing_input, _HMAC_HASHES[alg]).digest()
    if not hmac.compare_digest(signature, expected):
        raise CursorError(f"{_SIGNATURE_INVALID}: signature is invalid")

    now_ns = time.time_ns()
    problems = []
    if expires_at is not None and not now_ns < expires_at * 1_000_000_000:
        problems.append("token is expired")
    if not_before is not None and now_ns < not_before * 1_000_000_000:
        problems.append("token is not valid yet")
    if problems:
        raise CursorError(f"{_INVALID_CLAIMS}: " + "\n".join(problems))

    if next_request is None:
        # The reference dereferences the nil request and fails with a 500; we refuse the cursor.
        raise CursorError(f"{_INVALID_CLAIMS}: cursor has no Next request")
    return next_request
