"""The tracked diff of a section against its AI baseline, rendered as inline
HTML (<ins>/<del>, everything escaped). Pure: text in, markup out.

The diff runs on words, not characters: diff-match-patch's line-mode trick
(each distinct token becomes one character) applied to sentences, then to
the words of the sentences that changed. That keeps "anxious" -> "calm" a
whole-word replacement a clinician can read, and keeps a 10,000-word note
fast (bench/review.py).
"""

import re
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass

from diff_match_patch import diff_match_patch
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# A word, a run of whitespace, or one punctuation mark.
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]")
# Split after sentence ends and line breaks, keeping every character.
_SENTENCE = re.compile(r"(?<=[.!?\n])")
# Bounds the worst case (two unrelated long texts); past it dmp returns a
# coarser but still correct diff.
_DIFF_TIMEOUT_SECONDS = 0.5


@dataclass(frozen=True)
class SectionDiff:
    html: SafeString
    changed: bool
    inserted_words: int
    deleted_words: int


def _encode(a: list[str], b: list[str]) -> tuple[str, str, list[str]]:
    """Each distinct token becomes one character (diff-match-patch's
    linesToChars idea, for any tokens)."""
    tokens: list[str] = [""]  # index 0 unused: chr(0) stays out of the encoded text
    index: dict[str, int] = {}

    def encode(parts: list[str]) -> str:
        out = []
        for tok in parts:
            i = index.get(tok)
            if i is None:
                tokens.append(tok)
                i = index[tok] = len(tokens) - 1
            out.append(chr(i))
        return "".join(out)

    return encode(a), encode(b), tokens


def _token_diff(dmp: diff_match_patch, a: list[str], b: list[str]) -> list[tuple[int, str]]:
    enc_a, enc_b, tokens = _encode(a, b)
    diffs = dmp.diff_main(enc_a, enc_b, False)
    dmp.diff_cleanupSemantic(diffs)
    dmp.diff_charsToLines(diffs, tokens)
    return diffs


def _anchors(a: list[str], b: list[str]) -> list[tuple[int, int]]:
    """Positions of sentences that occur once on each side, in an order both
    sides agree on (longest increasing subsequence, as in patience diff)."""
    count_a, count_b = Counter(a), Counter(b)
    where_b = {tok: j for j, tok in enumerate(b) if count_b[tok] == 1}
    pairs = [(i, where_b[tok]) for i, tok in enumerate(a) if count_a[tok] == 1 and tok in where_b]
    tails: list[int] = []  # tails[k]: smallest j ending an increasing run of length k + 1
    tail_at: list[int] = []  # index into pairs of that run's last pair
    back: list[int] = [-1] * len(pairs)
    for n, (_, j) in enumerate(pairs):
        k = bisect_left(tails, j)
        back[n] = tail_at[k - 1] if k else -1
        if k == len(tails):
            tails.append(j)
            tail_at.append(n)
        else:
            tails[k] = j
            tail_at[k] = n
    run, n = [], tail_at[-1] if tail_at else -1
    while n != -1:
        run.append(pairs[n])
        n = back[n]
    return run[::-1]


def _sentence_diff(dmp: diff_match_patch, a: list[str], b: list[str]) -> list[tuple[int, str]]:
    """Sentence-level diff: unique sentences both sides share anchor it, and
    diff-match-patch aligns the short stretches between anchors."""
    out: list[tuple[int, str]] = []
    ia = ib = 0
    for i, j in [*_anchors(a, b), (len(a), len(b))]:
        if i > ia or j > ib:
            out.extend(_token_diff(dmp, a[ia:i], b[ib:j]))
        if i < len(a):
            out.append((dmp.DIFF_EQUAL, a[i]))
        ia, ib = i + 1, j + 1
    return out


def _diff(dmp: diff_match_patch, a: str, b: str) -> list[tuple[int, str]]:
    """Sentences first, then words inside the changed sentences: scattered
    edits in a long note would otherwise make diff-match-patch's bisect the
    slowest part of the review page."""
    out: list[tuple[int, str]] = []
    deleted: list[str] = []
    inserted: list[str] = []

    def flush() -> None:
        if deleted and inserted:
            out.extend(_token_diff(dmp, _TOKEN.findall("".join(deleted)), _TOKEN.findall("".join(inserted))))
        elif deleted:
            out.append((dmp.DIFF_DELETE, "".join(deleted)))
        elif inserted:
            out.append((dmp.DIFF_INSERT, "".join(inserted)))
        deleted.clear()
        inserted.clear()

    for op, text in _sentence_diff(dmp, _SENTENCE.split(a), _SENTENCE.split(b)):
        if op == dmp.DIFF_DELETE:
            deleted.append(text)
        elif op == dmp.DIFF_INSERT:
            inserted.append(text)
        else:
            flush()
            out.append((op, text))
    flush()
    return out


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def text_diff(baseline: str, current: str) -> SectionDiff:
    """Inline diff of current against baseline (the AI text)."""
    if baseline == current:
        return SectionDiff(html=escape(current), changed=False, inserted_words=0, deleted_words=0)
    dmp = diff_match_patch()
    dmp.Diff_Timeout = _DIFF_TIMEOUT_SECONDS
    diffs = _diff(dmp, baseline, current)
    parts, inserted, deleted = [], 0, 0
    for op, text in diffs:
        if op == dmp.DIFF_INSERT:
            parts.append(f"<ins>{escape(text)}</ins>")
            inserted += _words(text)
        elif op == dmp.DIFF_DELETE:
            parts.append(f"<del>{escape(text)}</del>")
            deleted += _words(text)
        else:
            parts.append(escape(text))
    return SectionDiff(
        html=mark_safe("".join(parts)),  # noqa: S308 - every piece above is escaped
        changed=True,
        inserted_words=inserted,
        deleted_words=deleted,
    )
