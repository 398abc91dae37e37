"""Anchoring the audit chain outside the database.

The hash chain (audit.services) shows that rows were not changed one by
one, but whoever owns the table can switch its trigger off, edit an event
and re-hash every later one, and the chain is whole again. So, every
AUDIT_ANCHOR_INTERVAL_MINUTES, each practice's chain head (seq, hash) and
the time are signed with an Ed25519 key that is not in the database
(audit.anchor_keys): a checkpoint. It is stored in the table and appended,
as one JSON line, to a sink outside the database (files in
AUDIT_ANCHOR_DIR, one per UTC day), which production points at storage the
database's owner cannot rewrite (docs/deployment.md). A rewritten chain no
longer hashes, at a checkpoint's seq, to the hash the key signed, and
audit_verify (audit.verify.audit_anchor_verify) says so. Events after the
last checkpoint are covered by the next one.
"""

import base64
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.anchor_keys import anchor_key_id, anchor_signing_key
from audit.models import AuditChainHead, AuditCheckpoint

SINK_FORMAT = 1
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint as a plain value, read from the table or the sink."""

    practice_id: int
    seq: int
    hash: str
    signed_at: datetime
    key_id: str
    signature: str

    @classmethod
    def of(cls, row: AuditCheckpoint) -> "Checkpoint":
        return cls(row.practice_id, row.seq, row.hash, row.signed_at, row.key_id, row.signature)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def anchor_payload(*, practice_id: int, seq: int, hash: str, signed_at: datetime) -> bytes:
    """The bytes a checkpoint's signature covers: compact JSON, keys sorted,
    so anyone can rebuild them from a sink line."""
    statement = {"v": SINK_FORMAT, "practice_id": practice_id, "seq": seq, "hash": hash, "signed_at": _iso(signed_at)}
    return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()


def anchor_line(checkpoint: Checkpoint, *, practice_slug: str = "") -> str:
    """The sink's JSON line for a checkpoint (practice_slug only for people)."""
    return json.dumps(
        {
            "v": SINK_FORMAT,
            "practice_id": checkpoint.practice_id,
            "practice": practice_slug,
            "seq": checkpoint.seq,
            "hash": checkpoint.hash,
            "signed_at": _iso(checkpoint.signed_at),
            "key_id": checkpoint.key_id,
            "signature": checkpoint.signature,
        },
        sort_keys=True,
    )


def anchor_line_parse(text: str) -> Checkpoint:
    """Raises ValueError for anything but a well-formed checkpoint line."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("v") != SINK_FORMAT:
        raise ValueError("not a checkpoint line of a known format")
    practice_id, seq, chain_hash = data.get("practice_id"), data.get("seq"), data.get("hash")
    key_id, signature, signed_at = data.get("key_id"), data.get("signature"), data.get("signed_at")
    if not (isinstance(practice_id, int) and isinstance(seq, int) and seq > 0):
        raise ValueError("practice_id and seq must be integers")
    if not (isinstance(chain_hash, str) and len(chain_hash) == 64 and set(chain_hash) <= _HEX):
        raise ValueError("hash must be 64 hex digits")
    if not (isinstance(key_id, str) and isinstance(signature, str) and isinstance(signed_at, str)):
        raise ValueError("key_id, signature and signed_at must be strings")
    moment = datetime.fromisoformat(signed_at)
    if moment.tzinfo is None:
        raise ValueError("signed_at has no time zone")
    return Checkpoint(practice_id, seq, chain_hash, moment, key_id, signature)


def anchor_sink_append(*, directory: Path, checkpoint: Checkpoint, practice_slug: str) -> None:
    """Append the checkpoint's line to the day's file and wait until it is on
    disk. Raises OSError when it cannot (the caller rolls back)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"checkpoints-{checkpoint.signed_at.astimezone(UTC):%Y-%m-%d}.jsonl"
    line = anchor_line(checkpoint, practice_slug=practice_slug) + "\n"
    with open(path, "a", encoding="utf-8") as handle:  # O_APPEND: concurrent writers do not overwrite each other
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def anchor_sink_read(directory: Path) -> tuple[list[Checkpoint], list[str]]:
    """Every checkpoint line in the sink, and where the unreadable lines are
    ("file:line"): a damaged sink is reported, not skipped."""
    checkpoints, unreadable = [], []
    if not directory.is_dir():
        return checkpoints, unreadable
    for path in sorted(directory.glob("*.jsonl")):
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    checkpoints.append(anchor_line_parse(text))
                except ValueError:
                    unreadable.append(f"{path.name}:{number}")
    return checkpoints, unreadable


def audit_checkpoint_create(
    *, practice_id: int, practice_slug: str, key: Ed25519PrivateKey, now: datetime
) -> AuditCheckpoint | None:
    """Sign the practice's chain head and store the checkpoint, in the table
    and in the sink, or neither: the row commits only once its line is on
    disk. None when there is nothing new to sign (no events, or the head
    was already anchored, perhaps by a concurrent run). Raises OSError when
    the sink cannot be written."""
    head = AuditChainHead.objects.filter(practice_id=practice_id).values_list("seq", "hash").first()
    if head is None or head[0] == 0:
        return None
    seq, chain_hash = head
    if AuditCheckpoint.objects.filter(practice_id=practice_id, seq=seq).exists():
        return None
    signed_at = now.astimezone(UTC).replace(microsecond=0)
    signature = key.sign(anchor_payload(practice_id=practice_id, seq=seq, hash=chain_hash, signed_at=signed_at))
    row = AuditCheckpoint(
        practice_id=practice_id,
        seq=seq,
        hash=chain_hash,
        signed_at=signed_at,
        key_id=anchor_key_id(key.public_key()),
        signature=base64.b64encode(signature).decode(),
    )
    try:
        with transaction.atomic():
            row.save()  # waits here for a concurrent run's row, then fails on the unique constraint
            anchor_sink_append(
                directory=Path(settings.AUDIT_ANCHOR_DIR), checkpoint=Checkpoint.of(row), practice_slug=practice_slug
            )
    except IntegrityError:
        return None
    return row


def audit_anchor_checkpoints(*, now: datetime | None = None) -> list[AuditCheckpoint]:
    """Checkpoint every practice whose chain moved since its last checkpoint.
    Raises AnchorKeyMissing when no signing key is configured (production
    never makes one up), OSError when the sink cannot be written."""
    key = anchor_signing_key(create=True)
    now = now or timezone.now()
    made = []
    heads = AuditChainHead.objects.filter(seq__gt=0).order_by("practice_id")
    for practice_id, slug in heads.values_list("practice_id", "practice__slug"):
        row = audit_checkpoint_create(practice_id=practice_id, practice_slug=slug, key=key, now=now)
        if row is not None:
            made.append(row)
    return made
