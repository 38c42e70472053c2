"""NamedProp as a dictionary key: equal props hash alike, in this process and after a trip
through pickle (as from a parse worker, whose string hashes differ from this process's)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from uuid import UUID

import pytest

from bridge.model.named import PS_PUBLIC_STRINGS, NamedProp, PSETID_Appointment


def test_equal_props_are_one_key() -> None:
    a = NamedProp(PSETID_Appointment, 0x8205)
    b = NamedProp(UUID(str(PSETID_Appointment)), 0x8205)
    assert a == b and hash(a) == hash(b)
    assert {a: 1}[b] == 1
    assert a != NamedProp(PSETID_Appointment, 0x8206)
    assert a != NamedProp(PS_PUBLIC_STRINGS, 0x8205)
    assert NamedProp(PS_PUBLIC_STRINGS, name="Keywords") != NamedProp(
        PS_PUBLIC_STRINGS, name="keywords"
    )
    assert a != (PSETID_Appointment, 0x8205, None)


def test_pickled_in_another_process_is_the_same_key() -> None:
    """The other process has its own string hash seed: a hash carried over would be wrong."""
    code = (
        "import pickle, sys; from bridge.model.named import NamedProp, PS_PUBLIC_STRINGS;"
        "sys.stdout.buffer.write(pickle.dumps(NamedProp(PS_PUBLIC_STRINGS, name='Keywords')))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, env=env)
    out = run.stdout
    got = pickle.loads(out)
    mine = NamedProp(PS_PUBLIC_STRINGS, name="Keywords")
    assert got == mine and hash(got) == hash(mine)
    assert {mine: "here"}[got] == "here"


def test_pickle_round_trip_keeps_equality_and_validation() -> None:
    for np in (NamedProp(PSETID_Appointment, 0), NamedProp(PS_PUBLIC_STRINGS, name="x y")):
        back = pickle.loads(pickle.dumps(np))
        assert back == np and hash(back) == hash(np)
    with pytest.raises(ValueError):
        NamedProp(PS_PUBLIC_STRINGS)


def test_unpickled_known_prop_is_the_known_object() -> None:
    from bridge.model.named import KNOWN

    np = next(iter(KNOWN))
    copy = NamedProp(np.guid, np.lid, np.name)
    assert pickle.loads(pickle.dumps(copy)) is np
