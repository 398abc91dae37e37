import uuid

from audit.context import RequestContext, current_request


class RequestContextMiddleware:
    """Gives each request an id (or keeps the caller's X-Request-Id) and makes
    it, the client address and the user agent available to audit_record."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
        request.request_id = request_id
        token = current_request.set(
            RequestContext(
                request_id=request_id,
                ip_address=request.META.get("REMOTE_ADDR") or None,
                user_agent=request.headers.get("User-Agent", "")[:400],
                session=getattr(request, "session", None),
            )
        )
        try:
            response = self.get_response(request)
        finally:
            current_request.reset(token)
        response["X-Request-Id"] = request_id
        return response
