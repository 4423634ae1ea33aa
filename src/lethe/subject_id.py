"""Subject ids: the one normal form every hash and lookup of a subject uses, and the key's strength.

A person is one subject however their id is typed: "Zoë" composed (NFC) or decomposed (NFD),
"ZOË@X.ORG" or "zoë@x.org", with or without surrounding spaces. The ledger, the subject maps and
every check that matches a subject call `normalize_subject` before hashing (imports nothing of
lethe: the ledger stays light).
"""

from __future__ import annotations

import base64
import binascii
import unicodedata

#: The current scheme: HMAC-SHA256 over the NFKC, case-folded, trimmed id.
SUBJECT_HASH_SCHEME = "hmac-sha256/nfkc-casefold"
#: Before it (rows stored without a scheme): HMAC-SHA256 over the id with whitespace stripped.
LEGACY_SUBJECT_HASH_SCHEME = "hmac-sha256/strip"
SUBJECT_HASH_SCHEMES = (SUBJECT_HASH_SCHEME, LEGACY_SUBJECT_HASH_SCHEME)
#: What LETHE_SUBJECT_KEY must carry: 256 bits, HMAC-SHA256's block-safe strength.
MIN_SUBJECT_KEY_BYTES = 32


def normalize_subject(subject: str, scheme: str = SUBJECT_HASH_SCHEME) -> str:
    """The form of `subject` that `scheme` hashes (NFKC, case-folded, trimmed for the current one).

    NFKC runs again after case folding: folding can leave a string that is not NFKC (e.g. "ǅ")."""
    text = str(subject)
    if scheme == LEGACY_SUBJECT_HASH_SCHEME:
        return text.strip()
    if scheme != SUBJECT_HASH_SCHEME:
        raise ValueError(f"unknown subject hash scheme {scheme!r}")
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold()).strip()


def key_bytes_carried(key: str) -> int:
    """How many bytes a key written as hex, base64 or raw text carries.

    Hex (even length, hex digits only) and base64 (standard alphabet, padded) count their decoded
    bytes; anything else counts its UTF-8 bytes. The HMAC itself always uses the text's UTF-8
    bytes, as before: reading a key never changes the hashes already stored."""
    text = key.strip()
    if text and len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text):
        return len(text) // 2
    try:
        return len(base64.b64decode(text, validate=True)) if text else 0
    except (binascii.Error, ValueError):
        return len(key.encode())
