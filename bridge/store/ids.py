"""Object identity: API ids, MAPI entry ids and source keys, all derived from row ids.

API ids are short strings (`f12` for a folder, `m345` for a message). PR_ENTRYID is a
30-byte MAPI entry id: 4 flag bytes, the store GUID, a 2-byte object kind and the 8-byte
row id; the API accepts either form wherever an id is expected.
"""

from __future__ import annotations

import re
import uuid
from typing import Literal

Kind = Literal["folder", "item"]

_PREFIX: dict[Kind, str] = {"folder": "f", "item": "m"}
_KIND_CODE: dict[Kind, int] = {"folder": 1, "item": 2}
_SHORT = re.compile(r"^([fm])([1-9][0-9]{0,17})$")
_HEX = re.compile(r"^[0-9A-Fa-f]{60}$")


class IdCodec:
    """Encodes and decodes ids for one store (entry ids embed the store GUID)."""

    def __init__(self, store_guid: uuid.UUID) -> None:
        self.store_guid = store_guid
        self._replica = {
            "folder": uuid.uuid5(store_guid, "folders").bytes,
            "item": uuid.uuid5(store_guid, "items").bytes,
        }

    @staticmethod
    def api_id(kind: Kind, row_id: int) -> str:
        return f"{_PREFIX[kind]}{row_id}"

    def entry_id(self, kind: Kind, row_id: int) -> bytes:
        return (
            b"\x00\x00\x00\x00"
            + self.store_guid.bytes
            + _KIND_CODE[kind].to_bytes(2, "big")
            + row_id.to_bytes(8, "big")
        )

    def source_key(self, kind: Kind, row_id: int) -> bytes:
        """22 bytes: a per-kind replica GUID and a 6-byte counter, as Exchange lays it out."""
        return self._replica[kind] + row_id.to_bytes(6, "big")

    def store_entry_id(self) -> bytes:
        return b"\x00\x00\x00\x00" + self.store_guid.bytes + b"\x00\x00" + bytes(8)

    def parse(self, kind: Kind, text: str) -> int | None:
        """The row id named by `text` (short id or hex entry id), or None if it is not one."""
        m = _SHORT.match(text)
        if m:
            return int(m.group(2)) if m.group(1) == _PREFIX[kind] else None
        if _HEX.match(text):
            raw = bytes.fromhex(text)
            if raw[4:20] != self.store_guid.bytes:
                return None
            if int.from_bytes(raw[20:22], "big") != _KIND_CODE[kind]:
                return None
            return int.from_bytes(raw[22:30], "big") or None
        return None
