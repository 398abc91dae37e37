"""The QA sampling draw, as pure functions: everything comes in as
arguments, so a note's draw can be re-derived later from its id and the
practice's seed (the audit event records the number and the rate)."""

import hashlib
import hmac
import re
from dataclasses import dataclass
from decimal import Decimal

_WORD = re.compile(r"\w+")


def draw_uniform(*, seed: str, note_id: int) -> float:
    """HMAC-SHA256(seed, "note:<id>") read as a number in [0, 1). Keyed, so
    without the seed nobody (a clinician included) can tell which of their
    notes will be drawn; the same id and seed always give the same number."""
    digest = hmac.new(seed.encode(), f"note:{note_id}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def is_rubber_stamp(*, edited: bool, words: int, review_seconds: int, seconds_per_100_words: int) -> bool:
    """Signed with no edit in less than seconds_per_100_words per 100 words of
    active review. A note with no words is never a rubber stamp."""
    if edited or words == 0:
        return False
    return review_seconds * 100 < seconds_per_100_words * words


@dataclass(frozen=True)
class Decision:
    sampled: bool
    reason: str  # a QADraw.Reason value, "" when not sampled
    rate_percent: Decimal


def sampling_decide(
    *,
    draw: float,
    rate_percent: Decimal,
    high_risk: bool,
    amendment: bool,
    earlier_signed: int,
    first_notes_always: int,
    rubber_stamp: bool,
    rubber_stamp_rate_percent: Decimal,
) -> Decision:
    """High-risk notes, amendments and a clinician's first N signed notes are
    always sampled; a rubber-stamped note is drawn at the higher of the two
    rates; any other note at the rate."""
    if high_risk:
        return Decision(True, "high_risk", Decimal("100"))
    if amendment:
        return Decision(True, "amendment", Decimal("100"))
    if earlier_signed < first_notes_always:
        return Decision(True, "first_notes", Decimal("100"))
    if rubber_stamp and rubber_stamp_rate_percent > rate_percent:
        sampled = draw * 100 < rubber_stamp_rate_percent
        return Decision(sampled, "rubber_stamp" if sampled else "", rubber_stamp_rate_percent)
    sampled = draw * 100 < rate_percent
    return Decision(sampled, "random" if sampled else "", rate_percent)
