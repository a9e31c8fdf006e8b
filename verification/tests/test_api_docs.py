"""The API's docs page is served from ninja's own files (not a CDN) although ninja is not an installed app."""

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


def test_the_api_docs_page_uses_local_swagger_files(client):
    response = client.get("/api/v1/docs")

    assert response.status_code == 200
    html = response.content.decode()
    for name in ("ninja/swagger-ui-bundle.js", "ninja/swagger-ui.css", "ninja/swagger-ui-init.js"):
        assert f"/static/{name}" in html
        assert finders.find(name), name  # found by path (settings.NINJA_DIR), so collectstatic ships it
    assert "cdn" not in html.lower()
    assert "/api/v1/openapi.json" in html
