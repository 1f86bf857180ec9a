import pytest


@pytest.mark.django_db
def test_openapi_schema_is_served_and_describes_bearer_tokens(client, admin):
    client.force_login(admin)
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path in (
        "/api/v1/datasources/",
        "/api/v1/columns/",
        "/api/v1/scans/",
        "/api/v1/access-requests/",
        "/api/v1/agent/bundle",
    ):
        assert any(known.startswith(path) for known in schema["paths"]), path
