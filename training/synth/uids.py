"""Deterministic DICOM UIDs.

UIDs use the ``2.25.<int>`` form (an integer derived from a UUID-sized hash,
PS3.5 B.2), so they are valid, globally unique in practice and a pure function
of the corpus seed and the object's position in the corpus.
"""
import hashlib


def make_uid(*parts) -> str:
    """Return a ``2.25.`` UID derived from ``parts`` (any reprs)."""
    h = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    n = int.from_bytes(h[:16], "big") >> 2  # 126 bits -> at most 38 digits
    return f"2.25.{n}"
