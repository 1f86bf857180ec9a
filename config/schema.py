"""The OpenAPI schema, generated from the views and kept honest about errors and roles.

drf-spectacular documents the success responses. This adds, per operation, every error
status the view can answer (all with ``config.api.ErrorSerializer``), the roles its
permission classes demand (``x-warden-roles`` and a line in the description) and the token
kind (``agentToken`` for the enforcement agent's endpoints, see governance.authentication).
A view declares errors the generic rules cannot see in ``extra_error_statuses``, and the
roles its service checks (rather than its permission classes) in ``documented_roles``.
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.openapi import AutoSchema

from config.api import ErrorSerializer

ERROR_DESCRIPTIONS = {
    400: "Malformed input: a body field or query parameter (named in `fields`) or a rule",
    401: "No, an invalid, expired or revoked token",
    403: "Authenticated, but the role or the object scope does not allow this",
    404: "No such object, or not visible to you",
    409: "The object is not in a state that allows this step",
    415: "The body is not JSON",
    502: "The datasource could not be reached",
    503: "A dependency of this step is unavailable",
}
BODY_METHODS = ("POST", "PUT", "PATCH")
ITEM_PATH = re.compile(r"\{(?P<name>\w+)\}/(\w[\w-]*/)?")


class WardenAutoSchema(AutoSchema):
    def _error_statuses(self) -> set[int]:
        statuses = {401, 403}
        has_body = self.method in BODY_METHODS and self.get_request_serializer() is not None
        has_query = any(p.get("in") == "query" for p in self._get_parameters())
        if has_body:
            statuses |= {400, 415}
        if has_query:
            statuses.add(400)
        if "{" in self.path:
            statuses.add(404)
        extra = getattr(self.view, "extra_error_statuses", {})
        statuses |= set(extra.get(self.method, ()))
        return statuses

    def _get_response_bodies(self, direction: Any = "response") -> dict:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for status in sorted(self._error_statuses()):
            if str(status) in responses:
                continue
            response = self._get_response_for_code(ErrorSerializer, str(status))
            response["description"] = ERROR_DESCRIPTIONS[status]
            responses[str(status)] = response
        return responses

    def required_roles(self) -> list[str]:
        """From the permission classes, or ``documented_roles`` where a service decides."""
        roles: list[str] = list(getattr(self.view, "documented_roles", {}).get(self.method, ()))
        for permission in self.view.get_permissions():
            roles_for = getattr(permission, "roles_for", None)
            if roles_for is not None:
                roles.extend(role for role in roles_for(self.method) if role not in roles)
        return roles

    def get_description(self) -> str:
        description = super().get_description() or ""
        roles = self.required_roles()
        who = f"Roles: {', '.join(roles)}." if roles else "Any authenticated user."
        return f"{description}\n\n{who}".strip()

    def get_extensions(self) -> dict:
        return {**super().get_extensions(), "x-warden-roles": self.required_roles()}


def created_id_links(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """OpenAPI links from each create to the operations on what it created.

    ``POST /things/`` answering 201 with an ``id`` links to every operation under
    ``/things/{pk}/``, so a client (and schemathesis's stateful phase) can follow
    create → read → update → delete without guessing.
    """
    paths = result.get("paths", {})
    for collection, item in paths.items():
        created = item.get("post", {}).get("responses", {}).get("201")
        if created is None:
            continue
        links = {}
        for path, operations in paths.items():
            item_id = ITEM_PATH.fullmatch(path[len(collection) :])
            if not path.startswith(collection) or item_id is None:
                continue
            for method, operation in operations.items():
                if method in ("get", "put", "patch", "post", "delete"):
                    links[operation["operationId"]] = {
                        "operationId": operation["operationId"],
                        "parameters": {item_id["name"]: "$response.body#/id"},
                    }
        if links:
            created["links"] = links
    return result
