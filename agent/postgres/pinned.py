"""Settings the agent pins upstream so it reads statement text as the server does."""

from __future__ import annotations

from agent.postgres.sql import PINNED_SETTINGS, is_pinned_value
from agent.postgres.state import SessionRefused


def check_pinned_setting(payload: bytes) -> None:
    """A ParameterStatus moving a pinned setting (from code the agent could not see, such as
    a function): the agent would now read statements differently from the server."""
    name, _, rest = payload.partition(b"\x00")
    setting = name.decode(errors="replace").lower()
    if setting not in PINNED_SETTINGS:
        return
    value = rest.partition(b"\x00")[0].decode(errors="replace")
    if not is_pinned_value(setting, value):
        raise SessionRefused(
            "42501",
            f"{setting} changed to {value!r} on the server; the Warden agent ends this session "
            f"(it parses statements with {setting} {PINNED_SETTINGS[setting]})",
        )


def unpinned_startup_setting(params: dict[str, str]) -> str | None:
    """Why a client's startup parameters cannot be honoured, or None.

    The agent parses statement text as UTF8 with standard_conforming_strings on and pins
    both upstream; a client asking for other values would read strings differently.
    """
    encoding = params.get("client_encoding")
    if encoding is not None and not is_pinned_value("client_encoding", encoding):
        return (
            f"the Warden agent speaks UTF8 only (client_encoding {encoding!r} requested); "
            "connect with client_encoding=UTF8"
        )
    conforming = params.get("standard_conforming_strings")
    if conforming is not None and not is_pinned_value("standard_conforming_strings", conforming):
        return "standard_conforming_strings must stay on behind the Warden agent"
    options = params.get("options", "").lower().replace("-", "_")
    for setting in PINNED_SETTINGS:
        if setting in options:
            return f"{setting} cannot be set in options behind the Warden agent"
    return None
