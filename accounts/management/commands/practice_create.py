"""The operator's first step after deployment: a practice and an invitation
for its first practice admin, whose link is printed once. No password ever
goes on the command line (it would stay in the shell history and ps)."""

from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from accounts.services import INVITATION_TTL, invitation_link, practice_bootstrap
from notes.errors import DomainError


class Command(BaseCommand):
    help = "Create a practice (SOAP and DAP templates) and print a one-time invitation link for its first admin."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="The practice's name, e.g. 'Riverbend Counseling'")
        parser.add_argument("--admin-email", required=True, help="Email address of the first practice admin")
        parser.add_argument("--slug", help="Short name (default: from --name)")
        parser.add_argument("--timezone", default="America/New_York", help="IANA time zone (default America/New_York)")
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="The address people use to reach this server, for the link (default http://127.0.0.1:8000)",
        )

    def handle(self, *args, name, admin_email, slug, timezone, base_url, **options):
        slug = slug or slugify(name)
        if not slug:
            raise CommandError("Give --slug: the name has no letters or digits to make one from.")
        try:
            practice, invitation, token = practice_bootstrap(
                name=name, slug=slug, admin_email=admin_email, timezone_name=timezone
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        link = invitation_link(base_url=base_url, token=token)
        self.stdout.write(f"Created practice “{practice.name}” ({practice.slug}) with SOAP and DAP templates.")
        self.stdout.write(f"Invitation for its first practice admin, {invitation.email}:")
        self.stdout.write(link)
        self.stdout.write(
            f"Give this link to them only: it works once, for {INVITATION_TTL.days} days, and is not stored."
        )
