"""Text analysis in our own code, for BM25 on clusters without language analyzers.

The local Elasticsearch (integration-test distribution) has only the built-in analyzers,
and English stemming lifts BM25 (and hybrid search) noticeably. So, when the
``search.app_stemmer`` setting asks for it, the indexers write a ``stems`` field: the
lower-cased words of the entry's texts with English stop words dropped and the rest
Snowball-stemmed, separated by spaces and indexed with the ``whitespace`` analyzer.
Queries go through the same function, so both sides agree by construction.
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

# Lucene's English stop set (what Elasticsearch's `english` analyzer drops) plus the
# pronouns and auxiliaries of the Snowball list that carry no topic.
# fmt: off
STOP_WORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into",
    "is", "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then",
    "there", "these", "they", "this", "to", "was", "will", "with", "i", "me", "my", "we",
    "our", "you", "your", "he", "him", "his", "she", "her", "its", "them", "what", "which",
    "who", "whom", "those", "am", "were", "been", "being", "have", "has", "had", "having",
    "do", "does", "did", "would", "should", "could", "can", "may", "might", "must",
    "shall", "from", "about", "than", "so", "very", "s", "t",
))
# fmt: on

_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")


@lru_cache(maxsize=4)
def _stemmer(language: str) -> Stemmer.Stemmer:
    return Stemmer.Stemmer(language)


def words(text: str) -> list[str]:
    """Lower-cased words, possessive 's removed (like Elasticsearch's `english`)."""
    out = []
    for match in _WORD.finditer(text.lower()):
        word = match.group()
        if word.endswith(("'s", "\u2019s")):
            word = word[:-2]
        out.append(word.replace("\u2019", "'"))
    return out


def stems(text: str | None, language: str = "english") -> str:
    """The text as space-separated stems without stop words ('' for 'none' or no text)."""
    if not text or language == "none":
        return ""
    kept = [w for w in words(text) if w not in STOP_WORDS]
    return " ".join(_stemmer(language).stemWords(kept))
