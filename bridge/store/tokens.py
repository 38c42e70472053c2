"""Bearer tokens for the local API, kept as SHA-256 hashes.

A token is 256 random bits, so a plain SHA-256 is enough to make a stolen database useless
for authentication; a slow password hash would only slow down every request."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass

import aiosqlite

from bridge.store.core import SYSTEM, StoreCore
from bridge.store.errors import Conflict, InvalidValue, NotFound

SCOPES = ("read", "write", "send", "admin")
PREFIX = "kb_"
_LAST_USED_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class Token:
    id: int
    name: str
    scope: str
    folders: tuple[int, ...] | None
    created: int
    last_used: int | None
    revoked: bool

    def allows(self, needed: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(needed)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class Tokens:
    def __init__(self, core: StoreCore) -> None:
        self.core = core
        self._touched: dict[int, float] = {}

    async def create(
        self, name: str, scope: str, folders: list[int] | None = None
    ) -> tuple[Token, str]:
        """A new token; the secret is returned once and never stored."""
        if scope not in SCOPES:
            raise InvalidValue(f"scope must be one of {', '.join(SCOPES)}")
        if not name or len(name) > 200 or any(ord(c) < 0x20 for c in name):
            raise InvalidValue("a token name must be 1–200 printable characters")
        secret = PREFIX + secrets.token_urlsafe(32)
        async with self.core.write(SYSTEM) as tx:
            async with tx.conn.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)) as cur:
                if await cur.fetchone():
                    raise Conflict(f"a token named '{name}' exists; revoke it or pick another name")
            if folders:
                marks = ",".join("?" * len(folders))
                async with tx.conn.execute(
                    f"SELECT count(*) FROM folders WHERE id IN ({marks})", folders
                ) as cur:
                    found = (await cur.fetchone() or [0])[0]
                if found != len(set(folders)):
                    raise NotFound("folder", "named in --folder")
            await tx.conn.execute(
                "INSERT INTO tokens (name, hash, scope, folders, created) VALUES (?, ?, ?, ?, ?)",
                (name, digest(secret), scope, json.dumps(folders) if folders else None, tx.now),
            )
        token = await self.by_name(name)
        assert token is not None
        return token, secret

    async def verify(self, secret: str) -> Token | None:
        """The live token with this secret, or None."""
        if not secret.startswith(PREFIX):
            return None
        async with self.core.reader.execute(
            "SELECT * FROM tokens WHERE hash = ? AND NOT revoked", (digest(secret),)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        token = _token(row)
        now = time.monotonic()
        if now - self._touched.get(token.id, 0.0) > _LAST_USED_EVERY:
            self._touched[token.id] = now
            async with self.core.write(SYSTEM) as tx:
                await tx.conn.execute(
                    "UPDATE tokens SET last_used = ? WHERE id = ?", (tx.now, token.id)
                )
        return token

    async def by_name(self, name: str) -> Token | None:
        async with self.core.reader.execute("SELECT * FROM tokens WHERE name = ?", (name,)) as cur:
            row = await cur.fetchone()
        return None if row is None else _token(row)

    async def list(self) -> list[Token]:
        async with self.core.reader.execute("SELECT * FROM tokens ORDER BY id") as cur:
            return [_token(r) for r in await cur.fetchall()]

    async def revoke(self, name: str) -> None:
        async with self.core.write(SYSTEM) as tx:
            cur = await tx.conn.execute(
                "UPDATE tokens SET revoked = 1 WHERE name = ? AND NOT revoked", (name,)
            )
            if cur.rowcount == 0:
                raise NotFound("token", name)


def _token(r: aiosqlite.Row) -> Token:
    folders = json.loads(r["folders"]) if r["folders"] else None
    return Token(
        id=r["id"],
        name=r["name"],
        scope=r["scope"],
        folders=tuple(folders) if folders else None,
        created=r["created"],
        last_used=r["last_used"],
        revoked=bool(r["revoked"]),
    )
