"""Checking the hash chain (`manage.py audit_verify`).

Each event of a practice, in seq order, must (1) follow its predecessor
without a gap in seq, (2) carry the predecessor's hash as prev_hash, and
(3) hash to its stored hash; the chain head must point at the last event, so
a deleted tail is caught too. On PostgreSQL the database does the work (one
query rebuilds every event's canonical text and hash and returns the first
failure); elsewhere rows are streamed through the ORM as plain tuples.
"""

import base64
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256

from cryptography.exceptions import InvalidSignature
from django.db import connection

from audit.anchoring import Checkpoint, anchor_payload
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from audit.services import HASHED_COLUMNS, PG_CANONICAL, audit_canonical

GENESIS = "0" * 64
_CHUNK = 5000
_IN_CHUNK = 900  # values per IN (...): under SQLite's oldest limit on bound parameters
# Below this many events one process is quicker than starting several.
PARALLEL_MIN_EVENTS = 200_000


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    event_id: int | None
    reason: str


@dataclass(frozen=True)
class ChainReport:
    practice_id: int
    events: int
    first_break: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.first_break is None


def _rows_orm(practice_id: int, lo: int, hi: int | None):
    """(id, seq, prev_hash, hash, canonical text) through the ORM: any database."""
    events = AuditEvent.objects.filter(practice_id=practice_id, seq__gte=lo)
    if hi is not None:
        events = events.filter(seq__lte=hi)
    for row in (
        events.order_by("seq")
        .values_list("id", "seq", "prev_hash", "hash", *HASHED_COLUMNS)
        .iterator(chunk_size=_CHUNK)
    ):
        yield row[0], row[1], row[2], row[3], audit_canonical(tuple(row[4:]))


# PostgreSQL rebuilds the canonical text and the hash of every event itself
# (audit.services.PG_CANONICAL, the expression it also hashes with on
# append) and sends back only the first event that fails a check, so the
# check runs at the database's speed.
_TABLE = AuditEvent._meta.db_table
_PG_CHECK = f"""
SELECT id, seq, prev_hash, hash, expected_prev, prev_seq, computed FROM (
    SELECT id, seq, prev_hash, hash,
        lag(hash) OVER (ORDER BY seq) AS expected_prev,
        lag(seq) OVER (ORDER BY seq) AS prev_seq,
        encode(sha256(convert_to(prev_hash || {PG_CANONICAL}, 'UTF8')), 'hex') AS computed
    FROM {_TABLE}
    WHERE practice_id = %(practice)s AND seq >= %(lo)s AND seq <= %(hi)s
) AS checked
WHERE computed <> hash
    OR prev_hash IS DISTINCT FROM COALESCE(expected_prev, %(first_prev)s)
    OR seq <> COALESCE(prev_seq, %(lo)s - 1) + 1
ORDER BY seq
LIMIT 1
"""  # noqa: S608 - fixed identifiers, values are parameters
_PG_SUMMARY = f"SELECT count(*), max(seq) FROM {_TABLE} WHERE practice_id = %s AND seq >= %s AND seq <= %s"  # noqa: S608


def _verify_range_postgresql(practice_id: int, lo: int, hi: int | None, prev_hash: str | None):
    top = hi if hi is not None else 2**63 - 1
    if prev_hash is None:
        prev_hash = (
            AuditEvent.objects.filter(practice_id=practice_id, seq=lo - 1).values_list("hash", flat=True).first()
        )
    with connection.cursor() as cursor:
        cursor.execute(
            _PG_CHECK,
            {"practice": practice_id, "lo": lo, "hi": top, "first_prev": prev_hash},
        )
        failed = cursor.fetchone()
        cursor.execute(_PG_SUMMARY, [practice_id, lo, top])
        count, last_seq = cursor.fetchone()
    if failed is not None:
        event_id, seq, stored_prev, _stored_hash, expected_prev, prev_seq, _computed = failed
        checked = seq - lo
        expected_seq = (prev_seq if prev_seq is not None else lo - 1) + 1
        if seq != expected_seq:
            what = "missing" if seq > expected_seq else "repeated"
            return checked, ChainBreak(expected_seq, event_id, f"event seq {expected_seq} is {what}"), None
        if stored_prev != (expected_prev if expected_prev is not None else prev_hash):
            return checked, ChainBreak(seq, event_id, "prev_hash does not match the previous event's hash"), None
        return checked, ChainBreak(seq, event_id, "the event's content does not match its hash"), None
    last_hash = prev_hash
    if count:
        last_hash = (
            AuditEvent.objects.filter(practice_id=practice_id, seq=last_seq).values_list("hash", flat=True).first()
        )
    if hi is not None and count < hi - lo + 1:
        return count, ChainBreak(lo + count, None, f"event seq {lo + count} is missing"), last_hash
    return count, None, last_hash


def _verify_range(practice_id: int, lo: int, hi: int | None, prev_hash: str | None):
    """Check events lo..hi (hi None: to the end) given the hash event lo - 1
    must have left (None: read it from the table). Returns (events checked,
    first break or None, hash of the last event checked)."""
    if connection.vendor == "postgresql":
        return _verify_range_postgresql(practice_id, lo, hi, prev_hash)
    if prev_hash is None:
        prev_hash = (
            AuditEvent.objects.filter(practice_id=practice_id, seq=lo - 1).values_list("hash", flat=True).first()
        )
    expected_seq = lo
    count = 0
    for event_id, seq, stored_prev, stored_hash, text in _rows_orm(practice_id, lo, hi):
        if seq != expected_seq:
            what = "missing" if seq > expected_seq else "repeated"
            return count, ChainBreak(expected_seq, event_id, f"event seq {expected_seq} is {what}"), prev_hash
        if stored_prev != prev_hash:
            return count, ChainBreak(seq, event_id, "prev_hash does not match the previous event's hash"), prev_hash
        if sha256((stored_prev + text).encode()).hexdigest() != stored_hash:
            return count, ChainBreak(seq, event_id, "the event's content does not match its hash"), prev_hash
        prev_hash = stored_hash
        expected_seq += 1
        count += 1
    if hi is not None and expected_seq <= hi:
        return count, ChainBreak(expected_seq, None, f"event seq {expected_seq} is missing"), prev_hash
    return count, None, prev_hash


def _verify_parallel(practice_id: int, head_seq: int, workers: int) -> list:
    """Split 1..head_seq into ranges checked side by side, each on its own
    database connection (a thread each: the work is the database's); each
    range starts from the stored hash of the event before it, which the
    previous range verifies."""
    size = -(-head_seq // workers)
    ranges = [
        (practice_id, lo, min(lo + size - 1, head_seq), GENESIS if lo == 1 else None)
        for lo in range(1, head_seq + 1, size)
    ]

    def run(args):
        try:
            return _verify_range(*args)
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, ranges))


def audit_chain_verify(*, practice_id: int, workers: int | None = None) -> ChainReport:
    """Verify one practice's chain up to its head as read at the start (events
    appended meanwhile are left for the next run); report the first broken
    link, if any.

    On PostgreSQL a long chain is checked in several ranges at once, each on
    its own connection (workers: default the CPU count, at most 4); inside a
    transaction in one go, since other connections would not see it."""
    head = AuditChainHead.objects.filter(practice_id=practice_id).values_list("seq", "hash").first()
    if head is None:
        # No head: either nothing was ever written, or the head was removed.
        if AuditEvent.objects.filter(practice_id=practice_id).exists():
            return ChainReport(practice_id, 0, ChainBreak(1, None, "the practice has events but no chain head"))
        return ChainReport(practice_id, 0, None)
    head_seq, head_hash = head
    workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    parallel = (
        workers > 1
        and head_seq >= PARALLEL_MIN_EVENTS
        and connection.vendor == "postgresql"
        and not connection.in_atomic_block
    )
    if parallel:
        results = _verify_parallel(practice_id, head_seq, workers)
    else:
        results = [_verify_range(practice_id, 1, head_seq, GENESIS)] if head_seq else []
    count = 0
    last_hash = GENESIS
    for checked, first_break, range_last in results:
        if first_break is not None:
            return ChainReport(practice_id, count + checked, first_break)
        count += checked
        last_hash = range_last
    if last_hash != head_hash:
        return ChainReport(
            practice_id,
            count,
            ChainBreak(head_seq, None, "the last event's hash is not the one the chain head recorded"),
        )
    # Events past the head are writes that committed during the check, unless
    # the head has not moved: then they were put there without audit_record.
    head_now = AuditChainHead.objects.filter(practice_id=practice_id).values_list("seq", flat=True).first()
    if head_now == head_seq:
        extra = AuditEvent.objects.filter(practice_id=practice_id, seq__gt=head_seq).order_by("seq").first()
        if extra is not None:
            return ChainReport(
                practice_id, count, ChainBreak(extra.seq, extra.pk, "an event lies beyond the chain head")
            )
    return ChainReport(practice_id, count, None)


# Checkpoints (audit.anchoring). The chain check above cannot see a chain
# that was rewritten and re-hashed as a whole; a checkpoint can: its signed
# hash is what the event at its seq hashed to when it was signed.


@dataclass(frozen=True)
class CheckpointProblem:
    seq: int
    signed_at: datetime | None
    reason: str


@dataclass(frozen=True)
class AnchorReport:
    practice_id: int
    checkpoints: int
    last: Checkpoint | None
    problems: tuple[CheckpointProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> CheckpointProblem | None:
        return self.problems[0] if self.problems else None


def _signature_problem(checkpoint: Checkpoint, keys: dict) -> str | None:
    key = keys.get(checkpoint.key_id)
    if key is None:
        return f"signed by key {checkpoint.key_id}, which is not among the public keys (AUDIT_ANCHOR_PUBLIC_KEYS)"
    payload = anchor_payload(
        practice_id=checkpoint.practice_id,
        seq=checkpoint.seq,
        hash=checkpoint.hash,
        signed_at=checkpoint.signed_at,
    )
    try:
        key.verify(base64.b64decode(checkpoint.signature, validate=True), payload)
    except (InvalidSignature, ValueError):
        return "the signature does not match the checkpoint"
    return None


def audit_anchor_verify(*, practice_id: int, sink: list[Checkpoint], keys: dict) -> AnchorReport:
    """Check one practice's chain against its checkpoints: those in the sink
    (sink: this practice's lines, the anchor the database cannot rewrite)
    and those in the table. Each must carry a valid signature and the hash
    the chain still has at its seq; each stored one must be in the sink, and
    each seq the sink anchors must have a stored checkpoint. Problems come
    back in seq order, so the first is the earliest checkpoint that a
    rewrite contradicts."""
    stored = [Checkpoint.of(row) for row in AuditCheckpoint.objects.filter(practice_id=practice_id).order_by("seq")]
    sink_set = set(sink)
    stored_seqs = {c.seq for c in stored}
    every = sorted(sink_set | set(stored), key=lambda c: (c.seq, c.signed_at))
    by_seq = defaultdict(list)
    for checkpoint in every:
        by_seq[checkpoint.seq].append(checkpoint)
    seqs = sorted(by_seq)
    chain = {}
    for lo in range(0, len(seqs), _IN_CHUNK):
        chain.update(
            AuditEvent.objects.filter(practice_id=practice_id, seq__in=seqs[lo : lo + _IN_CHUNK]).values_list(
                "seq", "hash"
            )
        )
    problems = []
    for seq in seqs:
        # The sink's version first: its time is the one to report.
        versions = sorted(by_seq[seq], key=lambda c: (c not in sink_set, c.signed_at))
        reasons = []
        for checkpoint in versions:
            at = chain.get(seq)
            if at is None:
                reasons.append(f"the chain has no event seq {seq}")
            elif at != checkpoint.hash:
                reasons.append(f"the chain no longer hashes to the signed hash at seq {seq} (rewritten)")
            signature = _signature_problem(checkpoint, keys)
            if signature:
                reasons.append(signature)
            if checkpoint not in sink_set:
                reasons.append("the stored checkpoint is not in the anchor sink")
            elif seq not in stored_seqs:
                reasons.append("the anchor sink's checkpoint is missing from the database")
        if reasons:
            problems.append(CheckpointProblem(seq, versions[0].signed_at, "; ".join(dict.fromkeys(reasons))))
    return AnchorReport(practice_id, len(every), every[-1] if every else None, tuple(problems))
