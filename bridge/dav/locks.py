"""The persistent lock store: wsgidav's own lock storage logic over a mapping that keeps
every entry in the store (table `dav_locks`), so locks survive a restart."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from wsgidav.lock_man.lock_storage import LockStorageDict

from bridge.dav.reader import Reader

Persist = Callable[[str, str | None], None]
_URL_KEY = "URL2TOKEN:"


def _default(value: Any) -> Any:
    if isinstance(value, bytes):  # lock owners are XML bytes
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot store {type(value).__name__} in a lock")


def _hook(obj: dict[str, Any]) -> Any:
    return base64.b64decode(obj["$bytes"]) if set(obj) == {"$bytes"} else obj


def dumps(value: Any) -> str:
    return json.dumps(value, default=_default)


def loads(text: str) -> Any:
    return json.loads(text, object_hook=_hook)


class _PersistedDict(MutableMapping[str, Any]):
    """An in-memory dict whose every change is written through to the store."""

    def __init__(self, entries: dict[str, Any], persist: Persist) -> None:
        self._data = entries
        self._persist = persist

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        # Callers modify what they get and assign it back (as with shelve): hand out copies.
        return loads(dumps(value))

    def __setitem__(self, key: str, value: Any) -> None:
        text = dumps(value)
        self._persist(key, text)
        self._data[key] = loads(text)

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._persist(key, None)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)


class StoreLockStorage(LockStorageDict):  # type: ignore[misc]
    """Lock storage backed by the store. `persist(key, value)` runs a store write (from a
    worker thread); entries are loaded once at open."""

    def __init__(self, reader: Reader, persist: Persist) -> None:
        super().__init__()
        self._reader = reader
        self._persist = persist

    def __repr__(self) -> str:
        return "StoreLockStorage"

    def open(self) -> None:
        entries = {key: loads(value) for key, value in self._reader.lock_entries()}
        self._dict = _PersistedDict(entries, self._persist)

    def close(self) -> None:
        self._dict = None  # type: ignore[assignment]

    def clear(self) -> None:
        if self._dict is not None:
            for key in list(self._dict):
                del self._dict[key]

    def locked_urls(self) -> set[str]:
        """The (normalized) URLs that have lock entries, expired ones included: any other
        URL has no locks to list."""
        entries: Any = self._dict
        if entries is None:
            return set()
        return {key[len(_URL_KEY) :] for key in entries if key.startswith(_URL_KEY)}
