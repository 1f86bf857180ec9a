"""A thin typed client of the Warden REST API (``/api/v1/``), over httpx.

    with WardenClient("https://warden.example.com", token="wdn_…") as warden:
        source = warden.datasource_create(name="shop", engine="postgresql", host="db",
                                          port=5432, database="shop", idempotency_key="k1")
        for column in warden.columns(datasource=source["id"], sensitivity=2):
            ...

Errors come back as ``ApiError`` carrying the API's one error body (detail, code, fields).
"""

from warden_client.client import ApiError, WardenClient

__all__ = ["ApiError", "WardenClient"]
