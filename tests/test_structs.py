"""fastagg.sqlite.structs: every native struct's dtype matches its C layout."""

import ctypes

import numpy as np
import pytest

from fastagg.sqlite import structs


@pytest.mark.parametrize("name", sorted(structs.MIRRORS))
def test_dtype_matches_ctypes_mirror(name):
    dtype, mirror = structs.MIRRORS[name]
    assert dtype.isalignedstruct
    assert dtype.itemsize == ctypes.sizeof(mirror)
    for field, *_ in mirror._fields_:
        assert dtype.fields[field][1] == getattr(mirror, field).offset, field
    structs.check_layout(name, dtype, mirror)


def test_index_info_offsets_are_sqlite_h():
    # sqlite3.h on a 64-bit platform (https://www.sqlite.org/c3ref/index_info.html)
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        pytest.skip("64-bit offsets")
    want = {
        "nConstraint": 0, "aConstraint": 8, "nOrderBy": 16, "aOrderBy": 24,
        "aConstraintUsage": 32, "idxNum": 40, "idxStr": 48, "needToFreeIdxStr": 56,
        "orderByConsumed": 60, "estimatedCost": 64, "estimatedRows": 72, "idxFlags": 80,
        "colUsed": 88,
    }
    assert {f: structs.INDEX_INFO.fields[f][1] for f in want} == want
    assert structs.INDEX_INFO.itemsize == 96
    assert structs.INDEX_CONSTRAINT.itemsize == 12
    assert structs.INDEX_CONSTRAINT.fields["usable"][1] == 5
    assert structs.INDEX_ORDERBY.itemsize == structs.INDEX_CONSTRAINT_USAGE.itemsize == 8
    assert structs.VTAB.fields["zErrMsg"][1] == 16  # what SQLite frees


def test_wrong_layout_fails_loudly():
    class Shifted(ctypes.Structure):
        _fields_ = [("iColumn", ctypes.c_int), ("op", ctypes.c_ubyte), ("usable", ctypes.c_ushort),
                    ("iTermOffset", ctypes.c_int)]

    with pytest.raises(AssertionError, match="usable"):
        structs.check_layout("INDEX_CONSTRAINT", structs.INDEX_CONSTRAINT, Shifted)
    packed = np.dtype([("iColumn", np.int32), ("op", np.uint8)])  # not aligned: 5 bytes
    with pytest.raises(AssertionError, match="size"):
        structs.check_layout("INDEX_ORDERBY", packed, structs.MIRRORS["INDEX_ORDERBY"][1])
