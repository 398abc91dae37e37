"""Sign each practice's audit chain head now (what the beat task does every
AUDIT_ANCHOR_INTERVAL_MINUTES), or manage the anchor key: --new-key PATH
writes a fresh Ed25519 key file (owner-readable only) and prints its public
key; --public-key prints the configured signing key's public key, the value
a verifier without the private key lists in AUDIT_ANCHOR_PUBLIC_KEYS."""

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management.base import BaseCommand, CommandError

from audit.anchor_keys import anchor_key_file_write, anchor_key_id, anchor_public_key_text, anchor_signing_key
from audit.anchoring import audit_anchor_checkpoints
from audit.errors import AnchorKeyError


class Command(BaseCommand):
    help = "Sign the audit chain heads now, or make / show the anchor key."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--new-key", metavar="PATH", help="Write a new signing key file (PEM) and print its public key"
        )
        group.add_argument("--public-key", action="store_true", help="Print the signing key's public key")

    def handle(self, *args, new_key=None, public_key=False, **options):
        if new_key:
            key = Ed25519PrivateKey.generate()
            try:
                anchor_key_file_write(Path(new_key), key)
            except FileExistsError:
                raise CommandError(f"{new_key} exists; a key that signed checkpoints is never overwritten.") from None
            self._print_public(key)
            return
        try:
            if public_key:
                self._print_public(anchor_signing_key())
                return
            made = audit_anchor_checkpoints()
        except (AnchorKeyError, OSError) as exc:
            raise CommandError(str(exc)) from None
        for row in made:
            self.stdout.write(
                f"practice {row.practice_id}: checkpoint at seq {row.seq} signed {row.signed_at.isoformat()}"
            )
        self.stdout.write(f"{len(made)} checkpoint{'s' if len(made) != 1 else ''} made.")

    def _print_public(self, key: Ed25519PrivateKey) -> None:
        public = key.public_key()
        self.stdout.write(f"public key: {anchor_public_key_text(public)}")
        self.stdout.write(f"key id: {anchor_key_id(public)}")
