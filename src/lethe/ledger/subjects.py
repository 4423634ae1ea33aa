"""A subject id as the ledger stores it: its keyed hash (HMAC-SHA256), never the raw value.

The current scheme hashes the normal form (`lethe.subject_id.normalize_subject`); rows stored under
an older scheme record theirs, and lookups try every scheme (the raw id is never stored, so a row
cannot be rehashed).
"""

from __future__ import annotations

import hashlib
import hmac

from lethe.config import settings
from lethe.errors import LedgerError
from lethe.ledger.store import LedgerStore
from lethe.subject_id import SUBJECT_HASH_SCHEME, SUBJECT_HASH_SCHEMES, normalize_subject


def hash_subject(subject: str, key: bytes, scheme: str = SUBJECT_HASH_SCHEME) -> str:
    """The subject's keyed hash (HMAC-SHA256, hex) under `scheme`: the only form of a subject id lethe
    stores. The current scheme hashes the normal form (`lethe.subject_id.normalize_subject`)."""
    subject = normalize_subject(subject, scheme)
    if not subject:
        raise LedgerError("a subject id must not be empty")
    try:
        encoded = subject.encode()
    except UnicodeEncodeError:  # undecodable bytes from a command line or file (lone surrogates)
        raise LedgerError("a subject id must be valid UTF-8 text") from None
    return hmac.new(key, encoded, hashlib.sha256).hexdigest()


class SubjectHashes(LedgerStore):
    """The ledger's key (`LETHE_SUBJECT_KEY` unless given) and the hashes of a subject under it."""

    def _key(self) -> bytes:
        return self._subject_key if self._subject_key is not None else settings().require_subject_key()

    def subject_hash(self, subject: str) -> str:
        """The subject's hash under the current scheme (what a new request stores)."""
        return hash_subject(subject, self._key())

    def subject_hashes(self, subject: str) -> dict[str, str]:
        """The subject's hash under every scheme, current first: lookups try them all, since rows
        stored under an older scheme cannot be rehashed (the raw id is never stored)."""
        key = self._key()
        return {scheme: hash_subject(subject, key, scheme) for scheme in SUBJECT_HASH_SCHEMES}
