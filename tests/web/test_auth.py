"""API keys: 401 without one, 403 with a wrong one, probes open."""

from __future__ import annotations

from collections.abc import Callable

import httpx


def test_api_keys_are_required_when_configured(serve: Callable[..., str]) -> None:
    with httpx.Client(base_url=serve(api_keys="key-one,key-two"), timeout=30) as client:
        response = client.get("/api/documents")
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
        response = client.get("/api/documents", headers={"Authorization": "Basic a2V5LW9uZQ=="})
        assert response.status_code == 401
        response = client.get("/api/documents", headers={"Authorization": "Bearer key-three"})
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
        response = client.post(
            "/api/documents", headers={"Authorization": "Bearer key-on"}, files={"file": b"x"}
        )
        assert response.status_code == 403
        for key in ("key-one", "key-two"):
            response = client.get("/api/documents", headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, response.text
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics").status_code == 401
        assert client.get("/openapi.json").status_code == 401


def test_no_keys_configured_means_open(api: httpx.Client) -> None:
    assert api.get("/api/documents").status_code == 200
