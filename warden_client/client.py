"""WardenClient: one method per operation the agent, the MCP server and the tests use."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx

Json = dict[str, Any]


class ApiError(Exception):
    """A 4xx/5xx answer, with the API's error body (``config.api.ErrorSerializer``)."""

    def __init__(self, status: int, body: Json) -> None:
        self.status = status
        self.detail: str = body.get("detail", "")
        self.code: str = body.get("code", "")
        self.fields: dict[str, list[str]] = body.get("fields", {})
        super().__init__(f"HTTP {status} {self.code}: {self.detail}")


def _present(**values: Any) -> Json:
    """The arguments that were given (None means "leave it to the server")."""
    return {key: value for key, value in values.items() if value is not None}


class WardenClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
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
            try:
                body = response.json()
            except ValueError:
                body = {"detail": response.text[:200], "code": "server_error"}
            raise ApiError(response.status_code, body)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Json:
        return self.request(method, path, **kwargs).json()

    def pages(self, path: str, params: Json | None = None) -> Iterator[Json]:
        """Every item of a paginated list, following ``next`` (offset or cursor pages)."""
        page = self._json("GET", path, params=params)
        while True:
            yield from page["results"]
            if not page.get("next"):
                return
            page = self._json("GET", page["next"])

    # ------------------------------------------------------------------ catalog

    def datasources(self, *, ordering: str | None = None) -> Iterator[Json]:
        return self.pages("datasources/", _present(ordering=ordering))

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
        body = _present(
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
        params = _present(q=q, datasource=datasource, tag=tag, sensitivity=sensitivity, state=state)
        return self.pages("columns/", params)

    def scan_start(self, datasource_id: int, *, sample_size: int | None = None) -> Json:
        body = _present(sample_size=sample_size)
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
        body = _present(
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
        return self._json("POST", "access-requests/", json=body, idempotency_key=idempotency_key)

    def access_request(self, request_id: int, *, wait: float | None = None) -> Json:
        return self._json("GET", f"access-requests/{request_id}/", params=_present(wait=wait))

    def access_requests(self, *, view: str = "mine", state: str | None = None) -> Iterator[Json]:
        return self.pages("access-requests/", _present(view=view, state=state))

    def access_request_approve(
        self,
        request_id: int,
        *,
        comment: str = "",
        scope: Json | None = None,
        duration_minutes: int | None = None,
    ) -> Json:
        body = _present(comment=comment, scope=scope, duration_minutes=duration_minutes)
        return self._json("POST", f"access-requests/{request_id}/approve/", json=body)

    def access_request_deny(self, request_id: int, *, comment: str = "") -> Json:
        return self._json("POST", f"access-requests/{request_id}/deny/", json={"comment": comment})

    # ------------------------------------------------------------------ audit

    def audit_events(self, **filters: str) -> Iterator[Json]:
        """Newest first; ``from``/``to`` are dates (pass them as ``**{"from": "2026-01-01"}``)."""
        return self.pages("audit/events/", filters)
