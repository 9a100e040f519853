"""Which Service a matrix destination's URL names (pure), as cluster DNS resolves it."""

from __future__ import annotations

import pytest

from chaosmesh_sec.probes._endpoints import service_of


@pytest.mark.parametrize(
    ("url", "service"),
    [
        ("http://helloworld-v1:5000/hello", ("team-a", "helloworld-v1")),
        ("http://helloworld-v1.default:5000/hello", ("default", "helloworld-v1")),
        ("http://httpbin.team-a.svc:8000/get", ("team-a", "httpbin")),
        ("https://httpbin.team-a.svc.cluster.local/get", ("team-a", "httpbin")),
        ("http://httpbin.team-a.svc.corp.example./get", ("team-a", "httpbin")),
        ("http://10.96.12.7:80/", None),
        ("http://[fd00::7]:80/", None),
        # as the pod's DNS search path tries it first; no slice then means "not a Service"
        ("http://example.com/", ("com", "example")),
        ("http://a.b.c.d/", None),
        ("not a url", None),
    ],
)
def test_service_named_by_a_url(url: str, service: tuple[str, str] | None) -> None:
    assert service_of(url, "team-a") == service
