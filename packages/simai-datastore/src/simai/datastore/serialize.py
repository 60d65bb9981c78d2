"""Tagged value formats: how a Python value becomes bytes and back.

Every stored value is one *frame*::

    header (28 B) | meta (msgpack, meta_len B) | zero pad to 64 B | payload

``header`` = magic ``SIMA``, format version, tag, flags, meta_len, payload_len and
an xxh3-64 checksum over header fields, meta and payload. Readers check the
length and the checksum before they interpret anything, so a truncated or
corrupted value raises :class:`CorruptValueError` naming the key, never returns
wrong data, and never reaches the unpickler.

Tags: raw ``bytes``; ``str`` (UTF-8); numpy arrays (dtype/shape/order in meta,
the raw buffer as payload, 64-byte aligned, no copy on write, at most one on
read); basic containers through msgpack (with extension types for nested arrays,
tuples, complex, numpy scalars and big ints); and pickle, which both the writer
and the reader must allow explicitly.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np
import xxhash

from simai.datastore.errors import CorruptValueError, PickleNotAllowedError

__all__ = [
    "MAGIC",
    "Buffer",
    "Parts",
    "PendingFrame",
    "decode",
    "encode",
    "encoded_size",
    "join_parts",
]

Buffer = bytes | bytearray | memoryview
Parts = Sequence[Buffer]

MAGIC = b"SIMA"
VERSION = 1
_HEADER = struct.Struct("<4sBBHIQQ")  # magic, version, tag, flags, meta_len, payload_len, xxh3
HEADER_SIZE = _HEADER.size
_ALIGN = 64

TAG_BYTES, TAG_STR, TAG_NDARRAY, TAG_MSGPACK, TAG_PICKLE = 1, 2, 3, 4, 5
_TAG_NAMES = {1: "bytes", 2: "str", 3: "ndarray", 4: "msgpack", 5: "pickle"}

_EXT_NDARRAY, _EXT_BIGINT, _EXT_TUPLE, _EXT_COMPLEX, _EXT_NPSCALAR = 1, 2, 3, 4, 5
# header flags
_FLAG_BYTEARRAY = 1  # TAG_BYTES: the value was a bytearray (comes back as one)
_EMPTY = b""


# Payloads from this size up may leave their checksum to the writer (``defer_checksum``).
STREAM_MIN = 1 << 20


class PendingFrame(list):
    """``[head, payload]`` whose checksum is not computed yet (the header holds zeros there).

    A transport that copies the payload anyway feeds each piece to :attr:`hasher`
    right after copying it, while it is still in cache, and then writes
    :meth:`sealed_head` in place of ``self[0]``: one pass over the data instead of
    two. Only a transport that declares ``streams_checksum = True`` receives one.
    """

    __slots__ = ("hasher",)

    def sealed_head(self) -> bytes:
        head = self[0]
        return b"".join(
            (
                head[: HEADER_SIZE - 8],
                self.hasher.intdigest().to_bytes(8, "little"),
                head[HEADER_SIZE:],
            )
        )


def _frame(
    tag: int, meta: bytes, payload: Buffer, defer: bool = False, flags: int = 0
) -> list[Buffer]:
    plen = payload.nbytes if isinstance(payload, memoryview) else len(payload)
    fields = _HEADER.pack(MAGIC, VERSION, tag, flags, len(meta), plen, 0)[:-8]
    h = xxhash.xxh3_64(fields)
    h.update(meta)
    pad = -(HEADER_SIZE + len(meta)) % _ALIGN
    if defer and plen >= STREAM_MIN:
        frame = PendingFrame((b"".join((fields, bytes(8), meta, b"\0" * pad)), payload))
        frame.hasher = h
        return frame
    h.update(payload)
    head = b"".join((fields, h.intdigest().to_bytes(8, "little"), meta, b"\0" * pad))
    return [head, payload] if plen else [head]


def encoded_size(parts: Parts) -> int:
    return sum(p.nbytes if isinstance(p, memoryview) else len(p) for p in parts)


def join_parts(parts: Parts) -> bytes:
    """One contiguous ``bytes`` (a copy) for transports that need a single buffer."""
    if len(parts) == 1 and isinstance(parts[0], bytes):
        return parts[0]
    return b"".join(parts)


# ----------------------------------------------------------------------------- arrays
def _dtype_meta(dtype: np.dtype) -> Any:
    if dtype.fields is None and dtype.subdtype is None:
        return dtype.str
    return np.lib.format.dtype_to_descr(dtype)


def _descr_fix(descr: Any) -> Any:
    # msgpack turns the tuples of a structured descr into lists; numpy needs tuples.
    if isinstance(descr, str):
        return descr
    out = []
    for field in descr:
        name = tuple(field[0]) if isinstance(field[0], list) else field[0]
        sub = _descr_fix(field[1])
        out.append((name, sub) if len(field) == 2 else (name, sub, tuple(field[2])))
    return out


def _array_parts(arr: np.ndarray) -> tuple[bytes, memoryview]:
    if arr.dtype.hasobject:
        raise TypeError("numpy arrays of dtype object need pickle (allow_pickle=True)")
    if arr.flags.c_contiguous:
        order, base = "C", arr
    elif arr.flags.f_contiguous:
        order, base = "F", arr.T  # the transpose of an F array is C-contiguous: no copy
    else:
        order, base = "C", np.ascontiguousarray(arr)
    meta = msgpack.packb((_dtype_meta(arr.dtype), arr.shape, order))
    if base.nbytes == 0:
        return meta, memoryview(_EMPTY)
    return meta, memoryview(base.reshape(-1).view(np.uint8))


def _array_from(
    meta: Any, payload: memoryview, writable: bool, out: np.ndarray | None = None
) -> np.ndarray:
    descr, shape, order = meta
    dtype = (
        np.dtype(descr)
        if isinstance(descr, str)
        else np.lib.format.descr_to_dtype(_descr_fix(descr))
    )
    shape = tuple(shape)
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != payload.nbytes:
        raise ValueError(
            f"payload has {payload.nbytes} bytes, {shape} {dtype} needs {count * dtype.itemsize}"
        )
    if out is not None:
        _check_out(out, dtype, shape)
        if payload.nbytes:
            src = np.frombuffer(payload, dtype=dtype, count=count)
            np.copyto(out, src.reshape(shape[::-1]).T if order == "F" else src.reshape(shape))
        return out
    if payload.nbytes == 0:
        return np.zeros(shape, dtype=dtype, order=order)
    arr = np.frombuffer(payload, dtype=dtype, count=count)
    if writable and not arr.flags.writeable:
        arr = arr.copy()
    if order == "F":
        return arr.reshape(shape[::-1]).T
    return arr.reshape(shape)


class OutMismatch(Exception):
    """Marks a caller's wrong ``out=`` (re-raised as is, never as corruption)."""


class OutTypeError(OutMismatch, TypeError):
    pass


class OutValueError(OutMismatch, ValueError):
    pass


def _check_out(out: Any, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    if not isinstance(out, np.ndarray):
        raise OutTypeError(f"out= must be a numpy array, not {type(out).__name__}")
    if out.dtype != dtype:
        raise OutTypeError(f"out= has dtype {out.dtype}; the stored array has dtype {dtype}")
    if out.shape != shape:
        raise OutValueError(f"out= has shape {out.shape}; the stored array has shape {shape}")
    if not out.flags.writeable:
        raise OutValueError("out= is read-only")


# ----------------------------------------------------------------------------- msgpack
def _default(obj: Any) -> msgpack.ExtType:
    if isinstance(obj, tuple):
        return msgpack.ExtType(_EXT_TUPLE, _packb(list(obj)))
    if isinstance(obj, np.ndarray) and type(obj) in (np.ndarray, np.memmap):
        meta, payload = _array_parts(obj)
        return msgpack.ExtType(_EXT_NDARRAY, msgpack.packb((meta, bytes(payload))))
    if isinstance(obj, np.generic) and not isinstance(obj, np.object_):
        meta, payload = _array_parts(np.asarray(obj))
        return msgpack.ExtType(_EXT_NPSCALAR, msgpack.packb((meta, bytes(payload))))
    if type(obj) is int:  # out of the 64-bit range msgpack supports natively
        return msgpack.ExtType(_EXT_BIGINT, str(obj).encode())
    if type(obj) is complex:
        return msgpack.ExtType(_EXT_COMPLEX, struct.pack("<dd", obj.real, obj.imag))
    raise _NeedsPickle(type(obj).__name__)


class _NeedsPickle(TypeError):
    pass


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_TUPLE:
        return tuple(_unpackb(data))
    if code in (_EXT_NDARRAY, _EXT_NPSCALAR):
        meta, payload = msgpack.unpackb(data)
        arr = _array_from(msgpack.unpackb(meta), memoryview(payload), writable=True)
        return arr[()] if code == _EXT_NPSCALAR else arr
    if code == _EXT_BIGINT:
        return int(data.decode())
    if code == _EXT_COMPLEX:
        return complex(*struct.unpack("<dd", data))
    raise ValueError(f"unknown msgpack extension type {code}")


def _packb(obj: Any) -> bytes:
    return msgpack.packb(obj, default=_default, strict_types=True, use_bin_type=True)


def _unpackb(data: Buffer) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


# ----------------------------------------------------------------------------- API
def encode(value: Any, *, allow_pickle: bool = False, defer_checksum: bool = False) -> list[Buffer]:
    """Frame ``value`` as a list of buffers (header first); arrays are not copied.

    ``defer_checksum``: a large array comes back as a :class:`PendingFrame`, whose
    writer must complete the checksum (see there).
    """
    t = type(value)
    if t is np.ndarray or t is np.memmap:
        if not value.dtype.hasobject:
            meta, payload = _array_parts(value)
            return _frame(TAG_NDARRAY, meta, payload, defer_checksum)
        reason = "numpy arrays of dtype object hold Python objects"
    elif t is bytes:
        return _frame(TAG_BYTES, _EMPTY, value)
    elif t is bytearray:
        return _frame(TAG_BYTES, _EMPTY, memoryview(value), flags=_FLAG_BYTEARRAY)
    elif t is memoryview:
        return _frame(TAG_BYTES, _EMPTY, value.cast("B"))
    elif t is str:
        return _frame(TAG_STR, _EMPTY, value.encode("utf-8", "surrogatepass"))
    else:
        try:
            return _frame(TAG_MSGPACK, _EMPTY, _packb(value))
        except (_NeedsPickle, TypeError, OverflowError, ValueError) as exc:
            reason = str(exc)
    if not allow_pickle:
        raise PickleNotAllowedError(
            f"values of type {t.__name__} need pickle ({reason}); create the DataStore with "
            f"allow_pickle=True on both the writing and the reading side"
        )
    return _frame(TAG_PICKLE, _EMPTY, pickle.dumps(value, protocol=5))


def decode(
    data: Buffer,
    key: str = "?",
    *,
    allow_pickle: bool = False,
    writable: bool = True,
    out: np.ndarray | None = None,
) -> Any:
    """Check and unpack one frame. Raises :class:`CorruptValueError` naming ``key``.

    ``out``: an array of the stored dtype and shape to copy an array value into
    (no allocation); a value of any other kind ignores it.
    """
    view = data if isinstance(data, memoryview) else memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    n = view.nbytes
    if n < HEADER_SIZE or bytes(view[:4]) != MAGIC:
        raise CorruptValueError(key, f"not a simai value ({n} bytes, missing the {MAGIC!r} header)")
    _magic, version, tag, flags, meta_len, payload_len, checksum = _HEADER.unpack_from(view)
    if version != VERSION:
        raise CorruptValueError(
            key, f"written by format version {version}; this reader knows {VERSION}"
        )
    start = HEADER_SIZE + meta_len
    pstart = start + (-start % _ALIGN)
    if n != pstart + payload_len:
        raise CorruptValueError(
            key,
            f"length mismatch: header says {pstart + payload_len} bytes, found {n} (truncated?)",
        )
    meta = view[HEADER_SIZE:start]
    payload = view[pstart : pstart + payload_len]
    h = xxhash.xxh3_64(view[: HEADER_SIZE - 8])
    h.update(meta)
    h.update(payload)
    if h.intdigest() != checksum:
        raise CorruptValueError(key, "checksum mismatch (the stored bytes were modified)")
    try:
        if tag == TAG_NDARRAY:
            return _array_from(msgpack.unpackb(meta), payload, writable, out)
        if tag == TAG_BYTES:
            return bytearray(payload) if flags & _FLAG_BYTEARRAY else bytes(payload)
        if tag == TAG_STR:
            return str(payload, "utf-8", "surrogatepass")
        if tag == TAG_MSGPACK:
            return _unpackb(payload)
    except OutMismatch:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CorruptValueError(key, f"cannot decode {_TAG_NAMES[tag]} value: {exc}") from exc
    if tag == TAG_PICKLE:
        if not allow_pickle:
            raise PickleNotAllowedError(
                f"the value stored under key {key!r} is a pickle; refusing to unpickle it "
                f"because this DataStore was created without allow_pickle=True"
            )
        return pickle.loads(payload)
    raise CorruptValueError(key, f"unknown value tag {tag}")
