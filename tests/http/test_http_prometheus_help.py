"""HELP texts of the Prometheus exposition over a real socket."""

from __future__ import annotations

import httpx


def help_lines(text: str) -> dict[str, str]:
    lines = [line.split(" ", 3) for line in text.splitlines() if line.startswith("# HELP ")]
    return {parts[2]: parts[3] for parts in lines}


def test_every_metric_explains_itself(http_server) -> None:
    server = http_server(metrics=True)
    response = httpx.get(server.base_url + "/metrics", params={"format": "prometheus"})
    assert response.status_code == 200
    helps = help_lines(response.text)
    assert helps
    for name, text in helps.items():
        assert "counter of /metrics" not in text, name
        assert not text.startswith("The store's "), name
    assert helps["interactsh_unmatched_total"].startswith("Interactions for a correlation id without a live session")
    assert helps["interactsh_dns_refused_total"].startswith("DNS queries answered REFUSED")
    assert helps["interactsh_ldap_nonldap_total"].startswith("Connections to the LDAP port")
