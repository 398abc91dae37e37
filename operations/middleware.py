"""Answers /healthz, /readyz and /metrics before anything else runs.

First in MIDDLEWARE on purpose: a probe from the orchestrator or the
container's own health check comes over plain HTTP with whatever Host it
uses (127.0.0.1:8000), so behind SecurityMiddleware it would be redirected
to https, and behind CommonMiddleware refused as a disallowed host. These
answers need no session, user or CSRF, and carry no PHI.
"""

from operations import health, metrics

ROUTES = {"/healthz": health.healthz, "/readyz": health.readyz, "/metrics": metrics.metrics}


class OperationsEndpointsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        view = ROUTES.get(request.path_info)
        if view is not None and request.method in ("GET", "HEAD"):
            return view(request)
        return self.get_response(request)
