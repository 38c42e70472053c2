"""The `kbridge` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridge import __version__
from bridge.config import Config, ConfigError, check_file, load_config
from bridge.datadir import DataDir, DataDirLocked
from bridge.store.errors import StoreError
from bridge.store.store import Store

EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3


class CliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kbridge", description="Local offline bridge for a groupware mailbox."
    )
    p.add_argument("--version", action="version", version=f"kbridge {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", type=Path, help="YAML config file (default: embedded)")
        sp.add_argument("--data-dir", type=Path, help="data directory (env KBRIDGE_DATA_DIR)")

    serve = sub.add_parser("serve", help="run the bridge")
    common(serve)
    serve.add_argument("--port", type=int, help="listen port (0 = any free port)")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")

    token = sub.add_parser("token", help="create, list or revoke API tokens")
    tsub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = tsub.add_parser("create", help="print a new token")
    common(create)
    create.add_argument("--name", required=True)
    create.add_argument("--scope", required=True, choices=("read", "write", "send", "admin"))
    create.add_argument(
        "--folder",
        action="append",
        default=[],
        metavar="ID",
        help="limit the token to this folder and its subfolders (repeatable)",
    )
    lst = tsub.add_parser("list", help="list tokens (never their secrets)")
    common(lst)
    revoke = tsub.add_parser("revoke", help="revoke a token at once")
    common(revoke)
    revoke.add_argument("name")

    sync = sub.add_parser("sync", help="ask the running bridge to sync now")
    common(sync)
    sync.add_argument("--wait", action="store_true", help="wait for the end; non-zero on failure")
    sync.add_argument("--timeout", type=float, default=3600.0)
    switch = sync.add_mutually_exclusive_group()
    switch.add_argument(
        "--offline", action="store_true", help="work offline: keep changes and mail queued"
    )
    switch.add_argument("--online", action="store_true", help="go back online, then sync")
    sync.add_argument(
        "--confirm-empty",
        metavar="MAILBOX",
        action="append",
        default=[],
        help="let a mailbox the server emptied be emptied here too (see `held` in status)",
    )

    status = sub.add_parser("status", help="state of the running bridge")
    common(status)
    status.add_argument("--json", action="store_true")
    status.add_argument(
        "--login-link",
        action="store_true",
        help="print a one-time link that opens the status page in a browser",
    )

    config = sub.add_parser("config", help="configuration tools")
    csub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = csub.add_parser("check", help="validate a config file and list every problem")
    check.add_argument("file", type=Path)
    return p


def _config(args: argparse.Namespace) -> Config:
    overrides: dict[str, object] = {}
    data_dir = args.data_dir or os.environ.get("KBRIDGE_DATA_DIR")
    if data_dir:
        overrides["data_dir"] = str(data_dir)
    if getattr(args, "port", None) is not None:
        overrides["listen.port"] = args.port
    if getattr(args, "host", None):
        overrides["listen.host"] = args.host
    return load_config(args.config, overrides=overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"kbridge: the configuration has problems:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except (CliError, DataDirLocked, StoreError) as exc:
        print(f"kbridge: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, CliError) else 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "config":
        problems = check_file(args.file)
        for problem in problems:
            print(problem)
        if not problems:
            print(f"{args.file}: OK")
        return 1 if problems else 0
    config = _config(args)
    if args.command == "serve":
        from bridge.logs import configure
        from bridge.server import run

        configure(config.logging.level, config.logging.file)
        run(config, out=lambda line: print(line, flush=True))
        return 0
    if args.command == "token":
        return asyncio.run(_token(args, DataDir(config.data_dir)))
    if args.command == "sync":
        return _sync(args, DataDir(config.data_dir))
    if args.command == "status":
        return _status(args, DataDir(config.data_dir))
    raise CliError(f"unknown command {args.command}", EXIT_USAGE)


async def _token(args: argparse.Namespace, data_dir: DataDir) -> int:
    if not data_dir.store.exists():
        raise CliError(f"no store in {data_dir.path}; run 'kbridge serve' once first")
    store = await Store.open(data_dir.store)
    try:
        if args.token_command == "create":
            folders = []
            for text in args.folder:
                fid = store.ids.parse("folder", text)
                if fid is None:
                    raise CliError(f"'{text}' is not a folder id of this store", EXIT_USAGE)
                folders.append(fid)
            _, secret = await store.tokens.create(args.name, args.scope, folders or None)
            print(secret)
        elif args.token_command == "list":
            for t in await store.tokens.list():
                limit = ",".join(store.ids.api_id("folder", f) for f in t.folders or []) or "-"
                state = "revoked" if t.revoked else "active"
                print(f"{t.name}\t{t.scope}\tfolders={limit}\t{state}")
        else:
            await store.tokens.revoke(args.name)
            print(f"revoked {args.name}")
    finally:
        await store.close()
    return 0


def _call(data_dir: DataDir, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    info = data_dir.read_server_info()
    if not info:
        raise CliError(f"no kbridge server is running on {data_dir.path}", EXIT_NOT_RUNNING)
    try:
        secret = data_dir.admin_token.read_text(encoding="utf-8").strip()
    except OSError:
        secret = os.environ.get("KBRIDGE_TOKEN", "")
    secret = os.environ.get("KBRIDGE_TOKEN", secret)
    headers = {"Authorization": f"Bearer {secret}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(str(info["url"]) + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, {"detail": exc.reason}
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(
            f"the server at {info['url']} does not answer: {exc}", EXIT_NOT_RUNNING
        ) from None


def _sync(args: argparse.Namespace, data_dir: DataDir) -> int:
    if args.offline or args.online:
        status, body = _call(
            data_dir, "POST", "/api/v1/sync/offline", {"offline": bool(args.offline)}
        )
        if status >= 400:
            detail = body.get("detail") if isinstance(body, dict) else body
            raise CliError(f"sync failed: {detail}")
        if args.offline:
            print("working offline")
            return 0
    if args.confirm_empty:
        status, body = _call(
            data_dir, "POST", "/api/v1/sync/confirm-empty", {"mailboxes": args.confirm_empty}
        )
        if status >= 400:
            detail = body.get("detail") if isinstance(body, dict) else body
            raise CliError(f"sync failed: {detail}")
        print("confirmed: " + ", ".join(body["confirmed"]))
    status, body = _call(data_dir, "POST", "/api/v1/sync/run")
    if status >= 400:
        detail = body.get("detail") if isinstance(body, dict) else body
        raise CliError(f"sync failed: {detail}")
    if not args.wait:
        print("sync started")
        return 0
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        _, state = _call(data_dir, "GET", "/api/v1/sync/status")
        if state.get("state") in ("online", "idle"):
            failed = {
                name: up.get("message") or up.get("state")
                for name, up in (state.get("upstreams") or {}).items()
                if up.get("state") in ("error", "auth-failed", "offline")
            }
            if failed:
                detail = "; ".join(f"{name}: {msg}" for name, msg in sorted(failed.items()))
                raise CliError(f"sync failed: {detail}")
            print("sync complete")
            return 0
        if state.get("state") in ("error", "auth-failed", "offline"):
            raise CliError(f"sync failed: {state.get('message') or state.get('state')}")
    raise CliError("sync did not finish in time")


def _status(args: argparse.Namespace, data_dir: DataDir) -> int:
    if args.login_link:
        status, body = _call(data_dir, "POST", "/api/v1/status/login-links")
        if status >= 400:
            raise CliError(f"no login link: {body}")
        print(body["url"])
        print(f"(works once, until {body['expires']})", file=sys.stderr)
        return 0
    status, body = _call(data_dir, "GET", "/api/v1/sync/status")
    if status >= 400:
        raise CliError(f"status failed: {body}")
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        print(f"state: {body.get('state')}")
        print(f"pending local changes: {body.get('journal_pending')}")
        if body.get("held"):
            print(f"held (emptied on the server, kept here): {', '.join(body['held'])}")
        if body.get("message"):
            print(body["message"])
    return 0
