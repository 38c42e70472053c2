"""MAPI property types and the tag arithmetic (tag = prop id << 16 | type)."""

from __future__ import annotations

from enum import IntEnum

MV_FLAG = 0x1000
MV_INSTANCE = 0x2000
MVI_FLAG = MV_FLAG | MV_INSTANCE


class PropType(IntEnum):
    """Base property types (MS-OXCDATA 2.11.1). Multi-valued types are base | MV_FLAG."""

    UNSPECIFIED = 0x0000
    NULL = 0x0001
    I2 = 0x0002
    LONG = 0x0003
    R4 = 0x0004
    DOUBLE = 0x0005
    CURRENCY = 0x0006
    APPTIME = 0x0007
    ERROR = 0x000A
    BOOLEAN = 0x000B
    OBJECT = 0x000D
    I8 = 0x0014
    STRING8 = 0x001E
    UNICODE = 0x001F
    SYSTIME = 0x0040
    CLSID = 0x0048
    SVREID = 0x00FB
    SRESTRICTION = 0x00FD
    ACTIONS = 0x00FE
    BINARY = 0x0102


# Base types that may carry MV_FLAG (MS-OXCDATA: PtypMultiple*).
MV_CAPABLE = frozenset(
    {
        PropType.I2,
        PropType.LONG,
        PropType.R4,
        PropType.DOUBLE,
        PropType.CURRENCY,
        PropType.APPTIME,
        PropType.I8,
        PropType.STRING8,
        PropType.UNICODE,
        PropType.SYSTIME,
        PropType.CLSID,
        PropType.BINARY,
    }
)

PT_NAMES = {t: "PT_" + t.name for t in PropType}


def make_tag(prop_id: int, prop_type: int) -> int:
    """Build a 32-bit property tag."""
    return ((prop_id & 0xFFFF) << 16) | (prop_type & 0xFFFF)


def prop_id(tag: int) -> int:
    return (tag >> 16) & 0xFFFF


def prop_type(tag: int) -> int:
    """The full type of a tag, MV flags included."""
    return tag & 0xFFFF


def base_type(ptype: int) -> int:
    """The type without the multi-value and instance flags."""
    return ptype & ~MVI_FLAG & 0xFFFF


def is_multi(ptype: int) -> bool:
    return bool(ptype & MV_FLAG)


def is_known_type(ptype: int) -> bool:
    """True for every storable single type and the MV types MS-OXCDATA allows."""
    base = base_type(ptype)
    try:
        bt = PropType(base)
    except ValueError:
        return False
    if ptype & MV_INSTANCE and not ptype & MV_FLAG:
        return False
    if is_multi(ptype):
        return bt in MV_CAPABLE
    return True


def type_name(ptype: int) -> str:
    base = base_type(ptype)
    try:
        name = PropType(base).name
    except ValueError:
        return f"0x{ptype:04X}"
    return ("PT_MV_" if is_multi(ptype) else "PT_") + name


def hex_tag(tag: int) -> str:
    """Canonical hex spelling of a tag: `0x0037001F`."""
    return f"0x{tag & 0xFFFFFFFF:08X}"
