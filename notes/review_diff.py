"""The one diff engine of a section's text: the review page's inline diff
against the AI baseline, attribution's AI/clinician shares at signing
(audit.attribution) and the timeline's edit diffs (stored at signing) all
come from diff_texts. Pure: text in, operations (or escaped markup) out.

The diff runs on words, not characters: diff-match-patch's line-mode trick
(each distinct token becomes one character) applied to sentences, then to
the words of the sentences that changed. That keeps "anxious" -> "calm" a
whole-word replacement a clinician can read (and credits neither side with
letters that merely coincide), and keeps a 10,000-word note fast
(bench/review.py).

Bounded, since it runs inside note_sign's row lock: diff-match-patch's
alignment is quadratic in the worst case (a 2,400-character rewrite takes
half a second). A changed stretch longer than the caps below is not aligned
but replaced whole, and all alignment of one diff (or of one signing, which
shares a deadline across its diffs) stops at a time budget, after which the
remaining stretches are replaced whole too. The fallback is coarser, never
wrong: what it calls kept is text both sides share in order (whole
sentences), so the AI is never credited with text it did not write; it may
credit the clinician with a few words they kept inside a rewritten stretch.
Diff.coarse says when it was taken.
"""

import re
import time
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
# A stretch of changed sentences longer than this (both sides' characters)
# is not aligned sentence by sentence, but replaced whole.
SENTENCE_ALIGN_MAX_CHARS = 8_000
# Changed sentences longer than this together are not aligned word by word.
WORD_ALIGN_MAX_CHARS = 2_000
# All alignment of one diff (or one signing) stops after this long; each
# diff-match-patch call gets what is left as its own Diff_Timeout, after
# which it too settles for a coarser, still valid, diff.
DIFF_TIME_BUDGET_SECONDS = 0.25


EQUAL, INSERT, DELETE = 0, 1, -1  # diff-match-patch's operation codes


@dataclass(frozen=True)
class Diff:
    """(op, text) pieces: EQUAL text is in both, DELETE only in the
    baseline, INSERT only in the current text. coarse: some changed stretch
    was replaced whole rather than aligned (a cap or the time budget)."""

    ops: list[tuple[int, str]]
    coarse: bool


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


class _Aligner:
    """One diff's (or one signing's) alignment work, under a shared deadline."""

    def __init__(self, deadline: float | None):
        self.deadline = time.monotonic() + DIFF_TIME_BUDGET_SECONDS if deadline is None else deadline
        self.dmp = diff_match_patch()
        self.coarse = False

    def token_diff(self, a: list[str], b: list[str], *, max_chars: int) -> list[tuple[int, str]]:
        """Align two token lists with diff-match-patch, or, over the cap or
        the budget, replace one with the other."""
        left = self.deadline - time.monotonic()
        if sum(map(len, a)) + sum(map(len, b)) > max_chars or left <= 0:
            self.coarse = True
            return [op for op in ((DELETE, "".join(a)), (INSERT, "".join(b))) if op[1]]
        self.dmp.Diff_Timeout = left
        enc_a, enc_b, tokens = _encode(a, b)
        diffs = self.dmp.diff_main(enc_a, enc_b, False)
        if time.monotonic() >= self.deadline:
            self.coarse = True  # diff-match-patch may have stopped aligning at its timeout
        self.dmp.diff_cleanupSemantic(diffs)
        self.dmp.diff_charsToLines(diffs, tokens)
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


def _sentence_diff(aligner: _Aligner, a: list[str], b: list[str]) -> list[tuple[int, str]]:
    """Sentence-level diff: unique sentences both sides share anchor it, and
    diff-match-patch aligns the short stretches between anchors (sentences
    equal at a stretch's ends are kept without it)."""
    out: list[tuple[int, str]] = []
    ia = ib = 0
    for i, j in [*_anchors(a, b), (len(a), len(b))]:
        sa, sb = a[ia:i], b[ib:j]
        head = 0
        while head < min(len(sa), len(sb)) and sa[head] == sb[head]:
            head += 1
        tail = 0
        while tail < min(len(sa), len(sb)) - head and sa[-1 - tail] == sb[-1 - tail]:
            tail += 1
        out.extend((EQUAL, t) for t in sa[:head])
        if len(sa) > head + tail or len(sb) > head + tail:
            out.extend(
                aligner.token_diff(
                    sa[head : len(sa) - tail], sb[head : len(sb) - tail], max_chars=SENTENCE_ALIGN_MAX_CHARS
                )
            )
        out.extend((EQUAL, t) for t in sa[len(sa) - tail :])
        if i < len(a):
            out.append((EQUAL, a[i]))
        ia, ib = i + 1, j + 1
    return out


def _diff(aligner: _Aligner, a: str, b: str) -> list[tuple[int, str]]:
    """Sentences first, then words inside the changed sentences: scattered
    edits in a long note would otherwise make diff-match-patch's bisect the
    slowest part of the review page."""
    out: list[tuple[int, str]] = []
    deleted: list[str] = []
    inserted: list[str] = []

    def flush() -> None:
        if deleted and inserted:
            out.extend(
                aligner.token_diff(
                    _TOKEN.findall("".join(deleted)), _TOKEN.findall("".join(inserted)), max_chars=WORD_ALIGN_MAX_CHARS
                )
            )
        elif deleted:
            out.append((DELETE, "".join(deleted)))
        elif inserted:
            out.append((INSERT, "".join(inserted)))
        deleted.clear()
        inserted.clear()

    for op, text in _sentence_diff(aligner, _SENTENCE.split(a), _SENTENCE.split(b)):
        if op == DELETE:
            deleted.append(text)
        elif op == INSERT:
            inserted.append(text)
        else:
            flush()
            out.append((op, text))
    flush()
    # Merge neighbours of one kind and drop empty pieces: one canonical form to store.
    merged: list[tuple[int, str]] = []
    for op, text in out:
        if not text:
            continue
        if merged and merged[-1][0] == op:
            merged[-1] = (op, merged[-1][1] + text)
        else:
            merged.append((op, text))
    return merged


def diff_texts(baseline: str, current: str, *, deadline: float | None = None) -> Diff:
    """The diff of current against baseline. deadline (time.monotonic())
    shares one time budget across several diffs; by default each diff has
    DIFF_TIME_BUDGET_SECONDS of its own."""
    if baseline == current:
        return Diff(ops=[(EQUAL, current)] if current else [], coarse=False)
    aligner = _Aligner(deadline)
    ops = _diff(aligner, baseline, current)
    return Diff(ops=ops, coarse=aligner.coarse)


def diff_runs(ops: list[tuple[int, str]]) -> list[list[int]]:
    """The diff as [op, length] pairs: what is stored, since the texts
    themselves are already stored (an edit event's before and after, a
    section's AI baseline and signed text)."""
    return [[op, len(text)] for op, text in ops]


def diff_from_runs(baseline: str, current: str, runs: list[list[int]]) -> list[tuple[int, str]]:
    """Rebuild the (op, text) pieces of a stored diff from its two texts.
    Raises ValueError if the runs do not fit the texts."""
    ops: list[tuple[int, str]] = []
    i = j = 0
    for op, length in runs:
        if op == EQUAL:
            text = baseline[i : i + length]
            if text != current[j : j + length]:
                raise ValueError("The stored diff does not fit these texts.")
            i, j = i + length, j + length
        elif op == DELETE:
            text, i = baseline[i : i + length], i + length
        else:
            text, j = current[j : j + length], j + length
        ops.append((op, text))
    if i != len(baseline) or j != len(current):
        raise ValueError("The stored diff does not fit these texts.")
    return ops


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def text_diff(baseline: str, current: str) -> SectionDiff:
    """Inline diff of current against baseline (the AI text)."""
    if baseline == current:
        return SectionDiff(html=escape(current), changed=False, inserted_words=0, deleted_words=0)
    parts, inserted, deleted = [], 0, 0
    for op, text in diff_texts(baseline, current).ops:
        if op == INSERT:
            parts.append(f"<ins>{escape(text)}</ins>")
            inserted += _words(text)
        elif op == DELETE:
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
