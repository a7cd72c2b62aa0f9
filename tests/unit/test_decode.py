"""Decoding transport fields into requests: the one place every transport's input is validated."""
import pytest

from resonate.core.codes import ApiError
from resonate.core.requests import decode
from resonate.core.requests import MAX_ID_BYTES, Text


def rejected(op, fields) -> str:
    with pytest.raises(ApiError) as e:
        decode(op, fields)
    assert e.value.code == 40000
    return " ".join(e.value.details)


@pytest.mark.parametrize("text, value", [("12", 12), ("+3", 3), ("-4", -4), (" 7 ", 7)])
def test_text_integers_parse_like_go(text, value):
    assert decode("tasks.complete", {"id": "t", "counter": Text(text)}).counter == value


@pytest.mark.parametrize("text", ["", "1_0", "--1", "+-1", "1.0", "0x10", "\u0663", "9" * 20])
def test_text_integers_reject_everything_else(text):
    assert "counter" in rejected("tasks.complete", {"id": "t", "counter": Text(text)})


@pytest.mark.parametrize("value", [1.0, "1", True, None, [1], {"a": 1}])
def test_json_integers_must_be_integers(value):
    fields = {"id": "p", "timeout": value}
    if value is None:
        assert decode("promises.create", fields).timeout == 0  # JSON null leaves the default, as Go
    else:
        assert "timeout" in rejected("promises.create", fields)


@pytest.mark.parametrize("text, value", [("true", True), ("True", True), ("1", True), ("t", True),
                                         ("false", False), ("False", False), ("0", False), ("", False)])
def test_strict_parses_like_go_parsebool(text, value):
    assert decode("promises.create", {"id": "p", "strict": Text(text)}).strict is value


def test_strict_rejects_other_text():
    assert "strict" in rejected("promises.create", {"id": "p", "strict": Text("yes")})


def test_keys_match_case_insensitively_exact_preferred():
    req = decode("promises.create", {"ID": "upper", "Timeout": 5})
    assert (req.id, req.timeout) == ("upper", 5)
    assert decode("promises.create", {"ID": "upper", "id": "exact"}).id == "exact"


def test_ids_are_bounded_and_nul_free():
    assert decode("promises.read", {"id": "x" * MAX_ID_BYTES}).id
    assert "at most" in rejected("promises.read", {"id": "x" * (MAX_ID_BYTES + 1)})
    assert "at most" in rejected("promises.read", {"id": "\u00e9" * (MAX_ID_BYTES // 2 + 1)})  # bytes, not chars
    assert "NUL" in rejected("promises.read", {"id": "a\x00"})
    assert "NUL" in rejected("promises.create", {"id": "a", "tags": {"k\x00": "v"}})


def test_values_need_padded_standard_base64():
    assert decode("promises.create", {"id": "p", "param": {"data": "aGk="}}).param.data == b"hi"
    assert "param.data" in rejected("promises.create", {"id": "p", "param": {"data": "aGk"}})
    assert "param.data" in rejected("promises.create", {"id": "p", "param": {"data": "a-_="}})
    assert "param.data" in rejected("promises.create", {"id": "p", "param": {"data": "aGk\u00e9"}})  # not ASCII
    assert decode("promises.create", {"id": "p", "param": {"data": "aG\nk="}}).param.data == b"hi"  # as Go


def test_nul_errors_name_the_field():
    assert rejected("promises.create", {"id": "a\x00"}) == "the field id must not contain NUL characters"
    assert rejected("promises.create", {"id": "a", "tags": {"k": "v\x00"}}) == \
        "the field tags['k'] must not contain NUL characters"
    assert rejected("promises.create", {"id": "a", "idempotencyKey": "\x00"}) == \
        "the field idempotencykey must not contain NUL characters"


def test_required_messages_follow_the_reference():
    assert rejected("promises.create", {}) == "The field id is required."
    assert rejected("tasks.claim", {"id": "t", "counter": 0, "processId": "p"}) == "The field counter is required."
    assert rejected("locks.acquire", {"resourceId": "r", "executionId": "e", "processId": "p", "ttl": -1}) == \
        "The field ttl must be be at least length 0."


def test_non_objects_are_rejected_naming_what_arrived():
    assert "array" in rejected("promises.create", [1, 2])
    assert "unknown operation" in rejected("promises.explode", {})
