"""WardenClient (sync) and AsyncWardenClient: both send the operations defined once in
``warden_client.operations``; WardenClient adds one method per operation the tests use."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from warden_client import operations
from warden_client.operations import Json, Operation, error_of, present

T = TypeVar("T")


def _send_args(operation: Operation[Any], timeout: float) -> dict[str, Any]:
    """httpx keyword arguments of one operation (a long-poll extends the timeout)."""
    args: dict[str, Any] = {
        "params": operation.params,
        "json": operation.json,
        "content": operation.content,
        "headers": operation.headers,
    }
    if operation.wait:
        args["timeout"] = timeout + operation.wait
    return args


class WardenClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        retry_once: bool = False,
    ) -> None:
        """``retry_once``: resend once after a transport error (e.g. a stale keep-alive
        connection); only for callers whose writes are safe to repeat."""
        self._timeout = timeout
        self._retry_once = retry_once
        self._http = httpx.Client(
            base_url=f"{base_url.rstrip('/')}/api/v1/",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> WardenClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ plumbing

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Json | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = self._http.request(method, path, json=json, params=params, headers=headers)
        if response.status_code >= 400:
            raise error_of(response)
        return response

    def call(self, operation: Operation[T]) -> T:
        """Send one operation; its result, or ApiError / MalformedAnswer / httpx.HTTPError."""
        args = _send_args(operation, self._timeout)
        try:
            response = self._http.request(operation.method, operation.path, **args)
        except httpx.TransportError:
            if not self._retry_once:
                raise
            response = self._http.request(operation.method, operation.path, **args)
        return operations.answer(operation, response)

    def _json(self, method: str, path: str, **kwargs: Any) -> Json:
        return self.request(method, path, **kwargs).json()

    def pages(self, path: str, params: Json | None = None) -> Iterator[Json]:
        """Every item of a paginated list, following ``next`` (offset or sequence pages)."""
        page = self._json("GET", path, params=params)
        while True:
            yield from page["results"]
            if not page.get("next"):
                return
            page = self._json("GET", page["next"])

    # ------------------------------------------------------------------ catalog

    def datasources(self, *, ordering: str | None = None) -> Iterator[Json]:
        return self.pages("datasources/", present(ordering=ordering))

    def datasource_create(
        self,
        *,
        name: str,
        engine: str,
        database: str,
        host: str = "",
        port: int | None = None,
        username: str = "",
        password: str = "",
        description: str = "",
        idempotency_key: str | None = None,
    ) -> Json:
        body = present(
            name=name,
            engine=engine,
            database=database,
            host=host,
            port=port,
            username=username,
            password=password,
            description=description,
        )
        return self._json("POST", "datasources/", json=body, idempotency_key=idempotency_key)

    def datasource(self, datasource_id: int) -> Json:
        return self._json("GET", f"datasources/{datasource_id}/")

    def columns(
        self,
        *,
        q: str | None = None,
        datasource: int | None = None,
        tag: str | None = None,
        sensitivity: int | None = None,
        state: str | None = None,
    ) -> Iterator[Json]:
        params = present(q=q, datasource=datasource, tag=tag, sensitivity=sensitivity, state=state)
        return self.pages("columns/", params)

    def scan_start(self, datasource_id: int, *, sample_size: int | None = None) -> Json:
        body = present(sample_size=sample_size)
        return self._json("POST", f"datasources/{datasource_id}/scans/", json=body)

    def scan(self, scan_id: int) -> Json:
        return self._json("GET", f"scans/{scan_id}/")

    # ------------------------------------------------------------------ policies

    def policy_create(
        self,
        *,
        datasource: str,
        name: str,
        subjects: Json,
        resource: Json,
        action: str,
        mask_method: str | None = None,
        priority: int | None = None,
    ) -> Json:
        body = present(
            datasource=datasource,
            name=name,
            subjects=subjects,
            resource=resource,
            action=action,
            mask_method=mask_method,
            priority=priority,
        )
        return self._json("POST", "policies/", json=body)

    # ------------------------------------------------------------------ access requests

    def access_request_create(
        self,
        *,
        datasource: str,
        scope: Json,
        level: str,
        reason: str,
        duration_minutes: int,
        statement: str = "",
        idempotency_key: str | None = None,
    ) -> Json:
        body = {
            "datasource": datasource,
            "scope": scope,
            "level": level,
            "reason": reason,
            "duration_minutes": duration_minutes,
            "statement": statement,
        }
        return self.call(operations.access_request_create(body, idempotency_key=idempotency_key))

    def access_request(self, request_id: int, *, wait: float = 0.0) -> Json:
        return self.call(operations.access_request(request_id, wait=wait))

    def access_requests(self, *, view: str = "mine", state: str | None = None) -> Iterator[Json]:
        return self.pages("access-requests/", present(view=view, state=state))

    def access_request_approve(
        self,
        request_id: int,
        *,
        comment: str = "",
        scope: Json | None = None,
        duration_minutes: int | None = None,
    ) -> Json:
        body = present(comment=comment, scope=scope, duration_minutes=duration_minutes)
        return self._json("POST", f"access-requests/{request_id}/approve/", json=body)

    def access_request_deny(self, request_id: int, *, comment: str = "") -> Json:
        return self._json("POST", f"access-requests/{request_id}/deny/", json={"comment": comment})

    # ------------------------------------------------------------------ audit

    def audit_events(self, **filters: str) -> Iterator[Json]:
        """Newest first; ``from``/``to`` are dates (pass them as ``**{"from": "2026-01-01"}``)."""
        return self.pages("audit/events/", filters)


class AsyncWardenClient:
    """The async twin of WardenClient for the agent and the MCP server: ``call`` sends any
    operation of ``warden_client.operations``. ``http`` shares one connection pool between
    clients of different tokens (the MCP server's callers); the owner closes it."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        limits: httpx.Limits | None = None,
        http: httpx.AsyncClient | None = None,
        retry_once: bool = False,
    ) -> None:
        self._prefix = f"{base_url.rstrip('/')}/api/v1/"
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._timeout = timeout
        self._retry_once = retry_once
        self._owned = http is None
        self._http = http or httpx.AsyncClient(
            timeout=timeout,
            limits=limits or httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    async def close(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def call(self, operation: Operation[T]) -> T:
        """Send one operation; its result, or ApiError / MalformedAnswer / httpx.HTTPError."""
        args = _send_args(operation, self._timeout)
        args["headers"] = {**self._headers, **operation.headers}
        url = self._prefix + operation.path
        try:
            response = await self._http.request(operation.method, url, **args)
        except httpx.TransportError:
            if not self._retry_once:
                raise
            response = await self._http.request(operation.method, url, **args)
        return operations.answer(operation, response)
