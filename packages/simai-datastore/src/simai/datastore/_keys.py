"""Key rules shared by every backend, so a key means the same thing everywhere.

A key is any non-empty ``str`` of at most :data:`MAX_KEY_BYTES` UTF-8 bytes that
contains no NUL character. Keys are data, never paths: file backends encode any
key that is not a plain file name, so ``"../../x"``, ``"/"`` or unicode stay inside
the staging directory and round-trip through ``keys()`` unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import re

MAX_KEY_BYTES = 1024
# Longest single path component we emit; well below NAME_MAX (255) on every
# common file system, leaving room for a temporary-file suffix.
_COMPONENT = 200
_PLAIN = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9._\-]{0,199}")


class InvalidKeyError(ValueError):
    """A key breaks the rules above."""


def validate_key(key: object, what: str = "key") -> str:
    """``key`` if it is a valid name, else :class:`InvalidKeyError` naming ``what``.

    The one rule for keys, queue names and lock names on every backend.
    """
    # Fast path (every call of every operation): an ASCII str is its own UTF-8.
    if type(key) is str and key.isascii() and 0 < len(key) <= MAX_KEY_BYTES and "\x00" not in key:
        return key
    if not isinstance(key, str):
        raise InvalidKeyError(f"{what}s must be str, not {type(key).__name__}: {key!r:.80}")
    if not key:
        raise InvalidKeyError(f"{what}s must not be empty")
    if "\x00" in key:
        raise InvalidKeyError(f"{what}s must not contain NUL characters: {key!r:.80}")
    try:
        n = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:  # lone surrogates
        raise InvalidKeyError(f"{what} is not valid unicode text: {key!r:.80}") from exc
    if n > MAX_KEY_BYTES:
        raise InvalidKeyError(
            f"{what} is {n} UTF-8 bytes long; the limit is {MAX_KEY_BYTES}: {key[:40]!r}..."
        )
    return key


def name_to_component(name: str) -> str:
    """One file-name-safe path component for a queue, lock or owner name.

    Such names need no inverse, so a name too long for one component is hashed
    ("#" is in neither the plain nor the base64url alphabet: no collision with a
    short name's component).
    """
    rel = key_to_relpath(name)
    if "/" not in rel:
        return rel
    return "#" + hashlib.blake2b(name.encode("utf-8"), digest_size=20).hexdigest()


def key_to_relpath(key: str) -> str:
    """File-system safe relative path for ``key`` (no ``/``-escape, no dot names)."""
    if _PLAIN.fullmatch(key):
        return key
    # "=" never starts a plain name and never appears in unpadded base64url, so
    # the two namespaces cannot collide.
    enc = "=" + base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii").rstrip("=")
    comps = [enc[i : i + _COMPONENT] for i in range(0, len(enc), _COMPONENT)]
    # Directory components end in "~" (outside the base64url alphabet) so a long
    # key's directory can never collide with a shorter key's file of the same name.
    return "/".join([c + "~" for c in comps[:-1]] + comps[-1:])


def relpath_to_key(rel: str) -> str | None:
    """Inverse of :func:`key_to_relpath`; ``None`` for names that are not keys."""
    if rel.startswith("="):
        enc = rel[1:].replace("~/", "")
        if "/" in enc or "~" in enc:
            return None
        try:
            return base64.urlsafe_b64decode(enc + "=" * (-len(enc) % 4)).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
    if "/" not in rel and _PLAIN.fullmatch(rel):
        return rel
    return None
