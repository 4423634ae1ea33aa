"""Whether free text that leaves the ledger (a reviewer's name or reason) names a subject it knows."""

from __future__ import annotations

import contextlib

from sqlalchemy import select

from lethe.errors import LedgerError
from lethe.ledger.schema import RequestRow
from lethe.ledger.subjects import SubjectHashes, hash_subject
from lethe.subject_id import SUBJECT_HASH_SCHEMES

#: Words of the text looked at (a reason is a sentence or two, not a document).
MAX_TEXT_WORDS = 400
#: Punctuation a subject id may be wrapped in within a sentence ("(alice@x.org).").
SURROUNDING = ".,;:!?()[]{}<>\"'`"


def phrases(text: str, max_words: int) -> set[str]:
    """Every run of up to `max_words` words of `text`, with and without surrounding punctuation."""
    words = str(text).split()[:MAX_TEXT_WORDS]
    found: set[str] = set()
    for start in range(len(words)):
        for end in range(start + 1, min(start + max_words, len(words)) + 1):
            phrase = " ".join(words[start:end])
            found.update({phrase, phrase.strip(SURROUNDING)})
    return found


class SubjectMentions(SubjectHashes):
    def mentions_subject(self, text: str, *, max_words: int = 4) -> bool:
        """Whether `text` holds the id of a subject the ledger knows (under any scheme): every run
        of up to `max_words` words, with and without surrounding punctuation, is hashed and looked up.
        For free text that leaves the ledger (a reviewer's name or reason)."""
        key = self._key()
        hashes: set[str] = set()
        for candidate in phrases(text, max_words):
            for scheme in SUBJECT_HASH_SCHEMES:
                with contextlib.suppress(LedgerError):  # empty, or not text: no subject's id
                    hashes.add(hash_subject(candidate, key, scheme))
        if not hashes:
            return False
        with self._transaction() as session:
            found = session.scalars(select(RequestRow.id).where(RequestRow.subject_hash.in_(sorted(hashes)))
                                    .limit(1)).first()
        return found is not None
