"""The auth decision (resonate/auth.py) on decoded core requests: JWT as the reference v0.8.2, and
basic credentials. Tokens are signed with an RSA key generated here."""
from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from resonate.auth import Authenticator
from resonate.core import requests as rq
from resonate.core.operations import decode


@pytest.fixture(scope="module")
def keys():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private, private.public_key()


@pytest.fixture(scope="module")
def auth(keys):
    return Authenticator(public_key=keys[1])


def token(private, **claims) -> str:
    return jwt.encode(claims, private, algorithm="RS256")


def create(pid: str):
    return decode("promises.create", {"id": pid, "timeout": 10**15})


def code(result):
    return None if result is None else result.code


def test_admin_passes_everything(keys, auth):
    t = token(keys[0], role="admin")
    assert code(auth.check_jwt(t, create("anything"))) is None
    assert code(auth.check_jwt("Bearer " + t, create("anything"))) is None


def test_prefix_limits_promise_schedule_and_task_ids(keys, auth):
    t = token(keys[0], prefix="team-a/")
    assert code(auth.check_jwt(t, create("team-a/1"))) is None
    assert code(auth.check_jwt(t, create("team-b/1"))) == 40300
    assert code(auth.check_jwt(t, rq.ReadSchedule("team-b/s"))) == 40300
    assert code(auth.check_jwt(t, rq.ReadSchedule("team-a/s"))) is None
    assert code(auth.check_jwt(t, rq.ClaimTask("__invoke:team-a/1", 1, "p", 1000))) is None
    assert code(auth.check_jwt(t, rq.ClaimTask("__resume:team-b/1:x", 1, "p", 1000))) == 40300
    assert code(auth.check_jwt(t, rq.CompleteTask("team-a/1", 1))) == 40300  # not a task id of that prefix
    assert code(auth.check_jwt(t, rq.HeartbeatTasks("p"))) is None  # touches no id, as the reference


def test_empty_prefix_allows_all_and_missing_prefix_is_forbidden(keys, auth):
    assert code(auth.check_jwt(token(keys[0], prefix=""), create("x"))) is None
    assert code(auth.check_jwt(token(keys[0], role="user"), create("x"))) == 40300


def test_bad_tokens_are_401_never_a_server_error(keys, auth):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    expired = token(keys[0], role="admin", exp=int(time.time()) - 60)
    not_yet = token(keys[0], role="admin", nbf=int(time.time()) + 3600)
    hs256 = jwt.encode({"role": "admin"}, "a-shared-secret-of-at-least-32-bytes!", algorithm="HS256")
    unsigned = jwt.encode({"role": "admin"}, None, algorithm="none")
    for bad in (None, "", "garbage", "Bearer ", "a.b.c", token(other, role="admin"), expired, not_yet, hs256,
                unsigned, "Bearer " + "x" * 10_000, "\u00e9.\u00e9.\u00e9"):
        error = auth.check_jwt(bad, create("x"))
        assert code(error) == 40100, bad
    assert auth.check_jwt(None, create("x")).details == ["missing authorization header"]


def test_basic_credentials():
    basic = Authenticator({"alice": "secret"})
    assert basic.check_basic("Basic YWxpY2U6c2VjcmV0")
    assert not basic.check_basic("Basic YWxpY2U6d3Jvbmc=") and not basic.check_basic(None)
    assert Authenticator().check_basic(None)  # no users: no check
    assert basic.check_jwt(None, create("x")) is None  # no key: no JWT
