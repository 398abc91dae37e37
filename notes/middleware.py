"""Automatic logoff after settings.IDLE_TIMEOUT without a request."""

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
            if last is not None and now - last > settings.IDLE_TIMEOUT.total_seconds():
                logout(request)
                if request.path.startswith("/api/"):
                    from django.http import JsonResponse

                    return JsonResponse({"detail": "Your session ended after inactivity. Log in again."}, status=401)
                messages.info(request, "You were logged out after a period of inactivity.")
                return redirect(f"{reverse('login')}?next={request.path}")
            request.session[_KEY] = now
        return self.get_response(request)
