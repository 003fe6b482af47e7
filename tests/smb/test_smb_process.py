"""The real server process with -smb: impacket's log lines reach polling clients through ``extra``."""

from __future__ import annotations

import json
import re
import time
import urllib.request

from serverproc import RunningServer
from smb_helpers import RECORD_WAIT, TIMEOUT, smb_login

HASH_LINE = re.compile(r"^alice::CORP:aaaaaaaaaaaaaaaa:[0-9a-f]{32}:[0-9a-f]+$")


def metrics(server: RunningServer) -> dict[str, object]:
    request = urllib.request.Request(f"{server.base_url}/metrics", headers={"Authorization": server.token or ""})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return dict(json.loads(response.read()))


def test_smb_login_reaches_polling_client(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server("-smb", "-metrics")
    assert server.token, "-smb must turn auth on and print a generated token"
    reader = server.client()
    smb_login(server.ports["smb"])

    extra: list[dict[str, object]] = []
    deadline = time.monotonic() + RECORD_WAIT
    while not any(HASH_LINE.match(str(item.get("raw-request", ""))) for item in extra):
        assert time.monotonic() < deadline, f"no NTLM hash record within {RECORD_WAIT} s: {extra}"
        time.sleep(0.2)
        extra += reader.poll().extra
    requests = [str(item["raw-request"]) for item in extra]
    assert "AUTHENTICATE_MESSAGE (CORP\\alice,)" in requests
    for item in extra:
        assert item["protocol"] == "smb"
        assert item["remote-address"] == ""
    smb_count = metrics(server)["smb"]
    assert isinstance(smb_count, int)
    assert smb_count >= len(extra)
