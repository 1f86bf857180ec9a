"""A thin typed client of the Warden REST API (``/api/v1/``), over httpx.

    with WardenClient("https://warden.example.com", token="wdn_…") as warden:
        source = warden.datasource_create(name="shop", engine="postgresql", host="db",
                                          port=5432, database="shop", idempotency_key="k1")
        for column in warden.columns(datasource=source["id"], sensitivity=2):
            ...

    warden = AsyncWardenClient("https://warden.example.com", token="wdn_…")
    identity = await warden.call(operations.mcp_whoami())

Each operation is defined once in ``warden_client.operations``; both clients send it.
Errors come back as ``ApiError`` carrying the API's one error body (detail, code, fields).
"""

from warden_client.client import AsyncWardenClient, WardenClient
from warden_client.operations import ApiError, MalformedAnswer

__all__ = ["ApiError", "AsyncWardenClient", "MalformedAnswer", "WardenClient"]
