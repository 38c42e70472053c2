"""Passwords from the configured `password_command` (a keyring or password-manager call)."""

from __future__ import annotations

import asyncio

from bridge.upstream.base import AuthFailed


async def run_password_command(command: str) -> str:
    """The first line printed by the configured password command."""
    proc = await asyncio.create_subprocess_shell(
        command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        detail = err.decode(errors="replace").strip()[:200]
        raise AuthFailed(f"password_command exited with {proc.returncode}: {detail}")
    return out.decode(errors="replace").splitlines()[0] if out.strip() else ""
