"""The `kbridge` command end to end: serve, tokens, status, sync, config check, shutdown."""

from __future__ import annotations

import stat
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.system.conftest import Server, kbridge, start_server

pytestmark = pytest.mark.system
ROOT = Path(__file__).resolve().parents[2]


def test_serve_prints_where_and_answers(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data")
    try:
        status, body = srv.request("GET", "/api/v1/store")
        assert status == 200
        assert set(body["default_folders"]) >= {"inbox", "outbox", "sent", "deleted", "conflicts"}
        if sys.platform != "win32":
            mode = stat.S_IMODE((srv.data_dir / "admin.token").stat().st_mode)
            assert mode == 0o600
    finally:
        code = srv.stop()
    out = srv.output
    assert code == 0, srv.errors
    assert "listening on http://127.0.0.1:" in out
    assert "admin.token" in out
    assert not (srv.data_dir / "server.json").exists()


def test_store_survives_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(data)
    inbox = srv.request("GET", "/api/v1/store")[1]["default_folders"]["inbox"]
    status, item = srv.request(
        "POST", f"/api/v1/folders/{inbox}/items", {"props": {"PidTagSubject": "kept"}}
    )
    assert status == 201
    assert srv.stop() == 0
    srv = start_server(data)
    try:
        status, again = srv.request("GET", f"/api/v1/items/{item['id']}")
        assert status == 200 and again["props"]["PidTagSubject"] == "kept"
    finally:
        srv.stop()


def test_second_server_on_same_data_dir_is_refused(server: Server) -> None:
    result = kbridge("serve", "--port", "0", data_dir=server.data_dir)
    assert result.returncode != 0
    assert "another kbridge server is running" in result.stderr


def test_token_commands(server: Server) -> None:
    made = kbridge(
        "token", "create", "--name", "plugin", "--scope", "read", data_dir=server.data_dir
    )
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert server.request("GET", "/api/v1/folders", token=secret)[0] == 200
    assert server.request("POST", "/api/v1/folders", {"name": "x"}, token=secret)[0] == 403
    listed = kbridge("token", "list", data_dir=server.data_dir)
    assert "plugin\tread" in listed.stdout
    assert secret not in listed.stdout
    revoked = kbridge("token", "revoke", "plugin", data_dir=server.data_dir)
    assert revoked.returncode == 0
    assert server.request("GET", "/api/v1/folders", token=secret)[0] == 401


def test_folder_limited_token(server: Server) -> None:
    inbox = server.request("GET", "/api/v1/store")[1]["default_folders"]["inbox"]
    made = kbridge(
        "token",
        "create",
        "--name",
        "inbox-only",
        "--scope",
        "write",
        "--folder",
        inbox,
        data_dir=server.data_dir,
    )
    assert made.returncode == 0, made.stderr
    status, body = server.request("GET", "/api/v1/folders", token=made.stdout.strip())
    assert status == 200
    assert [f["id"] for f in body["folders"]] == [inbox]


def test_status_and_sync_without_upstream(server: Server) -> None:
    status = kbridge("status", "--json", data_dir=server.data_dir)
    assert status.returncode == 0, status.stderr
    assert '"state": "local-only"' in status.stdout
    sync = kbridge("sync", "--wait", data_dir=server.data_dir)
    assert sync.returncode != 0
    assert "no upstream" in sync.stderr
    offline = kbridge("sync", "--offline", data_dir=server.data_dir)
    assert offline.returncode != 0
    assert "always works offline" in offline.stderr
    confirm = kbridge("sync", "--confirm-empty", "INBOX", data_dir=server.data_dir)
    assert confirm.returncode != 0
    assert "no mail upstream" in confirm.stderr


def test_login_link_opens_the_status_page(server: Server) -> None:
    made = kbridge("status", "--login-link", data_dir=server.data_dir)
    assert made.returncode == 0, made.stderr
    url = made.stdout.strip()
    assert url.startswith("http://127.0.0.1:") and "/status/login?code=" in url
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    with opener.open(url, timeout=10) as resp:  # follows the redirect to the page
        page = resp.read().decode()
    assert resp.status == 200 and "local-only" in page
    with pytest.raises(urllib.error.HTTPError) as used:
        opener.open(url, timeout=10)
    used.value.close()
    assert used.value.code == 403


def test_status_when_not_running(tmp_path: Path) -> None:
    result = kbridge("status", data_dir=tmp_path)
    assert result.returncode == 3
    assert "no kbridge server is running" in result.stderr


def test_config_check() -> None:
    good = kbridge("config", "check", str(ROOT / "config" / "bridge.example.yaml"))
    assert good.returncode == 0, good.stdout + good.stderr


def test_config_check_reports_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("listen:\n  port: banana\nsync:\n  intervall: 5\nsecurity:\n  encryption: on\n")
    result = kbridge("config", "check", str(bad))
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) >= 3
    assert all(line.startswith(f"{bad}") or "bad.yaml" in line for line in lines)
    assert "listen.port" in result.stdout and "intervall" in result.stdout


def test_corrupt_store_gives_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "store.sqlite").write_bytes(b"garbage" * 1000)
    result = kbridge("serve", "--port", "0", data_dir=data)
    assert result.returncode == 1
    assert "not an SQLite database" in result.stderr
    assert (data / "store.sqlite").read_bytes() == b"garbage" * 1000


def test_sigterm_with_open_event_stream_stops_cleanly(tmp_path: Path) -> None:
    import http.client
    import time
    from urllib.parse import urlsplit

    srv = start_server(tmp_path / "data")
    parts = urlsplit(srv.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", "/api/v1/events", headers={"Authorization": f"Bearer {srv.token}"})
    response = conn.getresponse()
    assert response.status == 200
    assert response.readline().startswith(b": kbridge event stream")
    started = time.monotonic()
    code = srv.stop()
    elapsed = time.monotonic() - started
    conn.close()
    assert code == 0, srv.errors
    assert elapsed < 5, f"shutdown took {elapsed:.1f} s with a client on the event stream"
