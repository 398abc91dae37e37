"""Who may administer a practice: an active practice admin of that practice.
Views check the role (admin_required); every service checks it again against
the object's practice, so a service called from anywhere refuses another
practice's data."""

from notes.errors import NotPermitted
from notes.models import Membership
from notes.roles import Role, membership_of
from notes.views import member_required

admin_required = member_required(Role.PRACTICE_ADMIN)


def admin_membership(actor, *, practice_id: int | None = None) -> Membership:
    """The actor's membership. Raises NotPermitted unless they are a practice
    admin (of practice_id, when given)."""
    membership = membership_of(actor)
    if membership is None or membership.role != Role.PRACTICE_ADMIN:
        raise NotPermitted("Only a practice admin can do this.")
    if practice_id is not None and membership.practice_id != practice_id:
        raise NotPermitted("This belongs to another practice.")
    return membership
