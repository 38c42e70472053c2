"""MAPI properties as WebDAV properties (`{urn:kbridge:mapi:}PidTagSubject`,
`{urn:kbridge:mapi:}x0037001F`) and dead properties kept in the store."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from wsgidav.dav_error import (
    HTTP_CONFLICT,
    HTTP_FORBIDDEN,
    HTTP_NOT_FOUND,
    DAVError,
    PRECONDITION_CODE_ProtectedProperty,
)
from wsgidav.util import etree
from wsgidav.xml_tools import string_to_xml

from bridge.api.propjson import decode_props, decode_tags
from bridge.model.errors import PropKeyError, PropValueError
from bridge.model.proptypes import PropType
from bridge.store import props as P
from bridge.store.errors import InvalidValue

if TYPE_CHECKING:
    from bridge.dav.provider import StoreProvider

MAPI_NS = "urn:kbridge:mapi:"
_PREFIX = "{" + MAPI_NS + "}"
_STRINGS = (PropType.UNICODE, PropType.STRING8)
LOCK_PROPS = ("{DAV:}lockdiscovery", "{DAV:}supportedlock")


def api_key(local: str) -> str:
    """The REST API's name of a property from its XML local name."""
    if len(local) == 9 and local[0] in "xX":
        return "0x" + local[1:]
    return local


class PropertiesMixin:
    """Added to a resource class; the resource sets `obj` (API id) and `provider`."""

    obj: str
    provider: StoreProvider
    environ: dict[str, Any]

    # -- hooks of the resource ------------------------------------------------------------

    def mapi_props(self) -> dict[int, Any]:
        raise NotImplementedError

    def mapi_write(
        self, set_props: dict[int, Any], named: dict[Any, Any], delete: list[int]
    ) -> None:
        raise NotImplementedError

    def dead_props(self) -> dict[str, str]:
        return self.provider.reader.dead_props(self.obj)

    # -- wsgidav interface ----------------------------------------------------------------

    def get_ref_url(self) -> str:
        """Cached: wsgidav asks for it once per property of every resource in a PROPFIND."""
        ref: str | None = self.__dict__.get("_ref_url")
        if ref is None:
            ref = super().get_ref_url()  # type: ignore[misc]
            self.__dict__["_ref_url"] = ref
        return ref

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names: list[str] = super().get_property_names(is_allprop=is_allprop)  # type: ignore[misc]
        names.extend(self.dead_props())
        return names

    def get_property_value(self, name: str) -> Any:
        if name.startswith(_PREFIX):
            return self._mapi_value(name[len(_PREFIX) :])
        dead = self.dead_props().get(name)
        if dead is not None:
            return string_to_xml(dead)
        return super().get_property_value(name)  # type: ignore[misc]

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> Any:
        if name.startswith(_PREFIX):
            return self._mapi_set(name[len(_PREFIX) :], value, dry_run)
        if name.startswith("{DAV:}") or name in LOCK_PROPS:
            return super().set_property_value(name, value, dry_run=dry_run)  # type: ignore[misc]
        if not dry_run:
            text = None if value is None else etree.tostring(value).decode("utf-8")
            self.provider.write(self.provider.store.dav.set_dead_props(self.obj, [(name, text)]))
        return None

    def remove_all_properties(self, *, recursive: bool) -> None:
        """Dead properties go with the object (the store removes them)."""

    # -- MAPI -----------------------------------------------------------------------------

    def _tag(self, local: str) -> int:
        try:
            (tag,) = decode_tags(self.provider.store, [api_key(local)])
        except (PropKeyError, ValueError):
            raise DAVError(HTTP_NOT_FOUND) from None
        return tag

    def _mapi_value(self, local: str) -> str:
        tag = self._tag(local)
        props = self.mapi_props()
        value = props.get(tag)
        if value is None:
            value = next(
                (v for t, v in props.items() if t >> 16 == tag >> 16 and not tag & 0xFFFF),
                None,
            )
        if value is None:
            raise DAVError(HTTP_NOT_FOUND)
        return value if isinstance(value, str) else json.dumps(value)

    def _mapi_set(self, local: str, value: Any, dry_run: bool) -> None:
        store = self.provider.store
        try:
            tag = self._tag(local)
            if value is None:
                P.check_writable({tag: None}, P.COMPUTED_ITEM | P.COMPUTED_FOLDER)
                if not dry_run:
                    self.mapi_write({}, {}, [tag])
                return
            text = value.text or ""
            parsed: Any = text
            if tag & 0xFFFF not in _STRINGS:
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = text
            tagged, named = decode_props(store, {api_key(local): parsed})
            P.check_writable(tagged, P.COMPUTED_ITEM | P.COMPUTED_FOLDER)
        except InvalidValue as exc:
            raise DAVError(
                HTTP_FORBIDDEN, str(exc), err_condition=PRECONDITION_CODE_ProtectedProperty
            ) from None
        except (PropKeyError, PropValueError, ValueError) as exc:
            raise DAVError(HTTP_CONFLICT, str(exc)) from None
        if not dry_run:
            self.mapi_write(tagged, named, [])
