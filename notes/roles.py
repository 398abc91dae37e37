"""Who may do what, by membership role. Selectors and services ask these;
views never check roles themselves."""

from notes.models import Membership

Role = Membership.Role


def membership_of(user) -> Membership | None:
    if not getattr(user, "is_authenticated", False):
        return None
    try:
        membership = user.membership
    except Membership.DoesNotExist:
        return None
    return membership if membership.is_active else None


def has_role(user, *roles: str) -> bool:
    membership = membership_of(user)
    return membership is not None and membership.role in roles
