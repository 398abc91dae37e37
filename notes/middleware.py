"""Automatic logoff after the practice's idle logoff (Practice.idle_timeout,
settings.IDLE_TIMEOUT by default) without a request."""

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.shortcuts import redirect
from django.urls import reverse

_KEY = "last_activity"


class IdleTimeoutMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            now = time.time()
            last = request.session.get(_KEY)
            from notes.roles import membership_of

            membership = membership_of(request.user)
            idle = membership.practice.idle_timeout if membership is not None else settings.IDLE_TIMEOUT
            if last is not None and now - last > idle.total_seconds():
                logout(request)
                if request.path.startswith("/api/"):
                    from django.http import JsonResponse

                    return JsonResponse({"detail": "Your session ended after inactivity. Log in again."}, status=401)
                messages.info(request, "You were logged out after a period of inactivity.")
                return redirect(f"{reverse('login')}?next={request.path}")
            request.session[_KEY] = now
        return self.get_response(request)


class PracticeTimezoneMiddleware:
    """Show times in the practice's timezone (issue 17, point 6): a clinician
    in New York reads a 10:00 session as 10:00, not 15:00 UTC. Templates name
    the zone beside each time. Stored times stay UTC; this changes display only."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from django.utils import timezone

        from notes.roles import membership_of

        membership = membership_of(getattr(request, "user", None))
        zone = None
        if membership is not None:
            try:
                zone = ZoneInfo(membership.practice.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                zone = None  # a malformed practice setting: UTC, still named on the page
        if zone is None:
            return self.get_response(request)
        with timezone.override(zone):
            return self.get_response(request)
