"""Each operation the clients speak, defined once: method, path, body and how its answer
is read. ``WardenClient`` and ``AsyncWardenClient`` only send them (see ``warden_client.client``).

Paths are relative to ``/api/v1/``. A builder returns an ``Operation[T]`` whose ``read`` turns
a successful (< 400) response into ``T``; 4xx/5xx answers become ``ApiError`` in the client.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, NotRequired, TypedDict, TypeVar, Unpack

import httpx

T = TypeVar("T")
Json = dict[str, Any]


class ApiError(Exception):
    """A 4xx/5xx answer, with the API's error body (``config.api.ErrorSerializer``)."""

    def __init__(self, status: int, body: Json) -> None:
        self.status = status
        self.body = body
        self.detail: str = str(body.get("detail", ""))
        self.code: str = str(body.get("code", ""))
        self.fields: dict[str, list[str]] = body.get("fields", {})
        super().__init__(f"HTTP {status} {self.code}: {self.detail}")


class MalformedAnswer(Exception):
    """A successful status whose body is not what the operation promises."""


@dataclass(frozen=True)
class Operation(Generic[T]):
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Json | None = None
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds the server may hold the request open (long-poll) on top of the timeout.
    wait: float = 0.0


def error_of(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"detail": response.text[:200], "code": "server_error"}
    return ApiError(response.status_code, body)


def answer(operation: Operation[T], response: httpx.Response) -> T:
    """The operation's result, or ``ApiError``/``MalformedAnswer``."""
    if response.status_code >= 400:
        raise error_of(response)
    try:
        return operation.read(response)
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedAnswer(f"{operation.method} {operation.path}: {exc!r}") from exc


def _json(response: httpx.Response) -> Json:
    body = response.json()
    if not isinstance(body, dict):
        raise TypeError(f"expected an object, got {type(body).__name__}")
    return body


def _wait_params(wait: float) -> Json | None:
    return {"wait": f"{wait:g}"} if wait > 0 else None


def present(**values: Any) -> Json:
    """The arguments that were given (None means "leave it to the server")."""
    return {key: value for key, value in values.items() if value is not None}


# ---------------------------------------------------------------------- agent API


@dataclass(frozen=True)
class BundleResponse:
    not_modified: bool
    envelope: Json | None = None
    etag: str | None = None


def agent_bundle(datasource: str, etag: str | None) -> Operation[BundleResponse]:
    def read(response: httpx.Response) -> BundleResponse:
        if response.status_code == 304:
            return BundleResponse(not_modified=True, etag=etag)
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code}")
        return BundleResponse(False, _json(response), response.headers.get("ETag"))

    headers = {"If-None-Match": etag} if etag else {}
    return Operation(
        "GET", "agent/bundle", read, params={"datasource": datasource}, headers=headers
    )


def agent_public_key() -> Operation[Json]:
    """The current signing key (key_id, public_key) and ``keys``: it and, during a rotation,
    the next one with the current key's endorsement."""
    return Operation("GET", "agent/public-key", _json)


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    identity: str = ""
    kind: str = "user"
    groups: tuple[str, ...] = ()
    detail: str = ""
    # Accepted: the token, and the sequence of the login's audit event, which a follow-up
    # (agent_login_abandoned) names; None from a control plane that does not send them.
    token_id: int | None = None
    login_sequence: int | None = None


def _optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _accepted(body: Json, identity: str) -> AuthResult:
    return AuthResult(
        True,
        body.get("identity", identity),
        body.get("kind", "user"),
        tuple(body.get("groups", ())),
        token_id=_optional_int(body.get("token_id")),
        login_sequence=_optional_int(body.get("login_sequence")),
    )


def agent_authenticate(
    datasource: str,
    identity: str,
    token: str,
    *,
    source_address: str = "",
    application: str = "",
) -> Operation[AuthResult]:
    """Check a token a client sent as a cleartext password (the control plane audits it):
    200 with the identity, 401 when refused."""
    body = {
        "datasource": datasource,
        "identity": identity,
        "token": token,
        "source_address": source_address,
        "application": application,
    }
    return Operation(
        "POST",
        "agent/authenticate",
        lambda response: _accepted(_json(response), identity),
        json=body,
    )


@dataclass(frozen=True)
class TokenVerifierInfo:
    """What the agent may know of one live token: verifiers, never the token."""

    id: int
    scram_stored_key: bytes
    scram_server_key: bytes
    mysql_native: bytes | None  # SHA1(SHA1(token)), for mysql_native_password


@dataclass(frozen=True)
class LoginVerifiers:
    """An identity's SCRAM salt and iteration count (shared by all its tokens) and the
    verifiers of its live tokens; an unknown identity gets a stable made-up salt and none."""

    identity: str
    salt: bytes
    iterations: int
    tokens: tuple[TokenVerifierInfo, ...]
    kind: str = "user"
    groups: tuple[str, ...] = ()
    tokens_without_verifier: int = 0


def agent_login_verifiers(datasource: str, identity: str) -> Operation[LoginVerifiers]:
    def read(response: httpx.Response) -> LoginVerifiers:
        body = _json(response)
        scram = body["scram"]
        tokens = tuple(
            TokenVerifierInfo(
                int(token["id"]),
                base64.b64decode(token["scram_stored_key"]),
                base64.b64decode(token["scram_server_key"]),
                bytes.fromhex(token["mysql_native"]) if token.get("mysql_native") else None,
            )
            for token in body["tokens"]
        )
        return LoginVerifiers(
            str(body["identity"]),
            base64.b64decode(scram["salt"]),
            int(scram["iterations"]),
            tokens,
            str(body.get("kind", "user")),
            tuple(body.get("groups", ())),
            int(body.get("tokens_without_verifier", 0)),
        )

    params = {"datasource": datasource, "identity": identity}
    return Operation("GET", "agent/verifiers", read, params=params)


def agent_login_record(
    datasource: str,
    identity: str,
    token_id: int | None,
    *,
    mechanism: str,
    source_address: str = "",
    application: str = "",
) -> Operation[AuthResult]:
    """Tell the control plane how a challenge-response login ended (it audits it and checks
    the token is still live): 200 with the identity, 401 when refused."""

    body = {
        "datasource": datasource,
        "identity": identity,
        "token_id": token_id,
        "mechanism": mechanism,
        "source_address": source_address,
        "application": application,
    }
    return Operation(
        "POST", "agent/logins", lambda response: _accepted(_json(response), identity), json=body
    )


def agent_login_abandoned(
    datasource: str,
    identity: str,
    token_id: int,
    *,
    login_sequence: int,
    mechanism: str,
    reason: str,
    source_address: str = "",
    application: str = "",
) -> Operation[None]:
    """Tell the control plane that a login it accepted (``agent_login_record``,
    ``agent_authenticate``; ``login_sequence`` as it answered) never became a session, and
    why (it audits that beside exactly that login): 204, 404 when it is no such login."""
    body = {
        "datasource": datasource,
        "identity": identity,
        "token_id": token_id,
        "login_sequence": login_sequence,
        "mechanism": mechanism,
        "reason": reason,
        "source_address": source_address,
        "application": application,
    }
    return Operation("POST", "agent/logins/abandoned", lambda _response: None, json=body)


def agent_heartbeat(body: Json) -> Operation[Json]:
    return Operation("POST", "agent/heartbeat", _json, json=body)


def agent_audit(document: str) -> Operation[dict[str, int]]:
    """One audit batch, already JSON-encoded (the agent encodes it off its event loop)."""
    return Operation(
        "POST",
        "agent/audit",
        lambda r: {k: int(v) for k, v in _json(r).items()},
        content=document.encode(),
        headers={"Content-Type": "application/json"},
    )


def agent_grant_run(grant_id: int, datasource: str) -> Operation[Json]:
    """Count one run of a grant limited to max_runs (404/409: refused, with a detail)."""
    return Operation(
        "POST", f"agent/grants/{grant_id}/runs", _json, params={"datasource": datasource}
    )


# What people read for an access request's state: the API keeps "denied", the product says
# "rejected" (as the web pages do, approvals.AccessRequest.State).
_REQUEST_STATE_WORDS = {"denied": "rejected"}


def request_state_words(state: str) -> str:
    """An access request's state as a sentence says it ("was rejected", not "was denied")."""
    return _REQUEST_STATE_WORDS.get(state, state)


@dataclass(frozen=True)
class HeldRequest:
    """The control plane's view of an access request the agent filed for a held statement."""

    id: int
    state: str
    review_url: str
    grant: Json | None = None

    @classmethod
    def from_json(cls, body: Json) -> HeldRequest:
        return cls(
            int(body["id"]),
            str(body["state"]),
            str(body.get("review_url") or ""),
            body.get("grant"),
        )


def _held(response: httpx.Response) -> HeldRequest:
    return HeldRequest.from_json(_json(response))


class HoldFiling(TypedDict):
    """What the agent files for a held statement.  Without ``scope`` the control plane
    takes it from the statement's own tables; the agent names the tables that hold it when
    it reads them through views (a grant on the view would not cover them)."""

    datasource: str
    identity: str
    statement: str
    fingerprint: str
    level: str
    reason: str
    scope: NotRequired[dict[str, list[str]]]


def agent_access_request_file(**filing: Unpack[HoldFiling]) -> Operation[HeldRequest]:
    """File (or reuse the identical pending) access request for a held statement."""
    body = {"scope": {}, **filing}
    return Operation("POST", "agent/access-requests", _held, json=body)


def agent_access_request_state(request_id: int, *, wait: float = 0.0) -> Operation[HeldRequest]:
    """Long-polls up to ``wait`` seconds (at most 60) for the request to leave ``pending``."""
    wait = max(0.0, min(wait, 60.0))
    return Operation(
        "GET", f"agent/access-requests/{request_id}", _held, params=_wait_params(wait), wait=wait
    )


# ---------------------------------------------------------------------- MCP API


def mcp_whoami() -> Operation[str]:
    return Operation("GET", "mcp/whoami", lambda r: str(_json(r)["identity"]))


def mcp_call_opened(tool: str, arguments: Json, *, route: bool = False) -> Operation[Json]:
    body = {"tool": tool, "arguments": arguments, "route": route}
    return Operation("POST", "mcp/calls", _json, json=body)


def mcp_datasources() -> Operation[list[Json]]:
    return Operation("GET", "mcp/datasources", lambda r: list(_json(r)["datasources"]))


def mcp_catalog(params: Json) -> Operation[Json]:
    return Operation("GET", "mcp/catalog", _json, params=params)


def mcp_table(datasource: str, table: str) -> Operation[Json]:
    return Operation("GET", "mcp/table", _json, params={"datasource": datasource, "table": table})


def mcp_explain(datasource: str, sql: str) -> Operation[Json]:
    return Operation("POST", "mcp/explain", _json, json={"datasource": datasource, "sql": sql})


# ---------------------------------------------------------------------- access requests


def access_request_create(body: Json, *, idempotency_key: str | None = None) -> Operation[Json]:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return Operation("POST", "access-requests/", _json, json=body, headers=headers)


def access_request(request_id: int, *, wait: float = 0.0) -> Operation[Json]:
    """As its requester sees it; with ``wait`` (≤ 60 s) answered as soon as it is decided."""
    return Operation(
        "GET", f"access-requests/{request_id}/", _json, params=_wait_params(wait), wait=wait
    )
