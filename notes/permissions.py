from rest_framework.permissions import BasePermission

from notes.roles import membership_of


class IsVerifiedMember(BasePermission):
    """A logged-in member of a practice who passed the second factor."""

    message = "Log in with your password and a one-time code."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return membership_of(user) is not None and user.is_verified()
