"""When the first admin's link from practice_create is lost or expired (or the
practice has lost every admin): print a new one-time link for a practice
admin. An open invitation of the address gets a new link (the old one stops
working); otherwise a new invitation is made. Audited as the operator."""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Invitation
from accounts.services import INVITATION_TTL, invitation_create, invitation_link, invitation_resend
from audit.services import actor_system
from notes.errors import DomainError
from notes.models import Practice
from notes.roles import Role


class Command(BaseCommand):
    help = "Print a new one-time invitation link for a practice admin of an existing practice."

    def add_arguments(self, parser):
        parser.add_argument("--practice", required=True, help="The practice's short name (slug)")
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, practice, admin_email, base_url, **options):
        found = Practice.objects.filter(slug=practice).first()
        if found is None:
            raise CommandError(f"No practice with the short name “{practice}”.")
        operator = actor_system("operator")
        open_ = Invitation.objects.filter(
            practice=found, email=admin_email.strip().lower(), accepted_at__isnull=True, revoked_at__isnull=True
        ).first()
        try:
            if open_ is not None:
                if open_.role != Role.PRACTICE_ADMIN:
                    raise CommandError(
                        "This address has an open invitation for another role; revoke it in the app first."
                    )
                invitation, token = invitation_resend(invitation=open_, actor=operator)
            else:
                invitation, token = invitation_create(
                    practice=found, email=admin_email, role=Role.PRACTICE_ADMIN, actor=operator
                )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Invitation for a practice admin of “{found.name}”, {invitation.email}:")
        self.stdout.write(invitation_link(base_url=base_url, token=token))
        self.stdout.write(
            f"Give this link to them only: it works once, for {INVITATION_TTL.days} days, and is not stored."
        )
