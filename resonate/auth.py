"""Who may call the API: basic auth (`--api-http-auth`) and JWT (`--api-auth-public-key`), decided here once
for every transport. HTTP reads the `Authorization` header, gRPC the `authorization` metadata.

JWT as the reference v0.8.2 (`internal/api/middleware.go`): an RS256 token signed by the key's private
half, given bare or as `Bearer <token>`; `exp`/`nbf` are checked. A token whose `role` is `admin` may do
anything; otherwise its `prefix` claim must be present, and the ids the request touches must start with
it (task ids with `__invoke:`, `__resume:` or `__notify:` + prefix). Failing authentication is 40100,
failing authorization 40300: never a 5xx, whatever the token holds.
"""
from __future__ import annotations

import base64
import hmac
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from .core import requests as rq
from .core.codes import ApiError, server_error

UNAUTHORIZED = 40100
FORBIDDEN = 40300
TASK_ID_PREFIXES = ("__invoke:", "__resume:", "__notify:")


def load_public_key(path: str) -> RSAPublicKey:
    """The PEM file named by --api-auth-public-key; start-up fails with a clear message otherwise."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SystemExit(f"resonate: --api-auth-public-key: cannot read {path}: {e.strerror or e}") from None
    try:
        key = load_pem_public_key(data)
    except ValueError as e:
        raise SystemExit(f"resonate: --api-auth-public-key: {path} is not a PEM public key: {e}") from None
    if not isinstance(key, RSAPublicKey):
        raise SystemExit(f"resonate: --api-auth-public-key: {path} is not an RSA public key")
    return key


def basic_credentials(users: dict[str, str]) -> set[str]:
    """The exact `Authorization` header values basic auth accepts."""
    return {"Basic " + base64.b64encode(f"{u}:{p}".encode()).decode() for u, p in users.items()}


def basic_ok(accepted: set[str], given: str | None) -> bool:
    given = given or ""
    return any(hmac.compare_digest(given.encode(), ok.encode()) for ok in accepted)


def touched_ids(request: Any) -> tuple[list[str], list[str]] | None:
    """(promise/schedule ids, task ids) a request touches; None when it touches no id (always allowed)."""
    if isinstance(request, (rq.ReadPromise, rq.CreatePromise, rq.CompletePromise, rq.SearchPromises,
                            rq.ReadSchedule, rq.DeleteSchedule, rq.SearchSchedules)):
        return [request.id], []
    if isinstance(request, rq.CreatePromiseAndTask):
        return [request.promise.id], []
    if isinstance(request, (rq.CreateCallback, rq.CreateSubscription)):
        return [request.promise_id], []
    if isinstance(request, rq.CreateSchedule):
        return [request.id, request.promise_id], []  # the reference checks the promise id only
    if isinstance(request, (rq.ClaimTask, rq.CompleteTask, rq.DropTask)):
        return [], [request.id]
    return None  # locks and task heartbeats carry no promise id, as the reference


class Authenticator:
    """Decides for every transport. `check` returns None when the call may proceed, else the ApiError."""

    def __init__(self, basic_users: dict[str, str] | None = None, public_key: RSAPublicKey | None = None):
        self.basic = basic_credentials(basic_users or {})
        self.public_key = public_key

    @classmethod
    def from_config(cls, cfg) -> "Authenticator":
        key = load_public_key(cfg.api_auth_public_key) if cfg.api_auth_public_key else None
        return cls(cfg.http_auth, key)

    @property
    def enabled(self) -> bool:
        return bool(self.basic) or self.public_key is not None

    @property
    def jwt_enabled(self) -> bool:
        return self.public_key is not None

    def check_basic(self, authorization: str | None) -> bool:
        return not self.basic or basic_ok(self.basic, authorization)

    def claims(self, authorization: str | None) -> dict:
        """The token's verified claims, or a 40100 naming why not."""
        if not authorization:
            raise server_error(UNAUTHORIZED, "missing authorization header")
        token = authorization
        scheme, _, rest = authorization.partition(" ")
        if scheme.lower() == "bearer":
            token = rest.strip()
        try:
            claims = jwt.decode(token, self.public_key, algorithms=["RS256", "RS384", "RS512"],
                                # as golang-jwt v5: exp and nbf checked, aud and iat not
                                options={"require": [], "verify_aud": False, "verify_iat": False})
        except jwt.PyJWTError as e:
            raise server_error(UNAUTHORIZED, f"token validation failed: {e}") from None
        except Exception as e:  # anything a hostile token may provoke: still 401, never a 5xx
            raise server_error(UNAUTHORIZED, f"token validation failed: {type(e).__name__}") from None
        if not isinstance(claims, dict):
            raise server_error(UNAUTHORIZED, "found no claims")
        return claims

    def check_jwt(self, authorization: str | None, request: Any) -> ApiError | None:
        if self.public_key is None:
            return None
        try:
            claims = self.claims(authorization)
        except ApiError as e:
            return e
        role = claims.get("role")
        if isinstance(role, str) and role.lower() == "admin":
            return None
        prefix = claims.get("prefix")
        if not isinstance(prefix, str):
            return server_error(FORBIDDEN, "unauthorized prefix")
        if prefix == "":
            return None
        ids = touched_ids(request)
        if ids is None:
            return None
        plain, tasks = ids
        if all(i.startswith(prefix) for i in plain) and all(
                any(t.startswith(p + prefix) for p in TASK_ID_PREFIXES) for t in tasks):
            return None
        return server_error(FORBIDDEN, "unauthorized prefix")
