"""One exception handler for the API: domain errors become 4xx with field
errors, Http404 stays 404, and nothing becomes a 500. And the API's 404 for
any path under /api/ that names no operation (a non-integer id included)."""

from django.http import JsonResponse
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from notes.errors import DomainError


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        field = exc.field or "non_field_errors"
        return Response({"detail": exc.message, "errors": {field: [exc.message]}}, status=exc.status_code)
    return drf_exception_handler(exc, context)


def api_not_found(request):
    """JSON, in the API's error shape, where Django would answer its HTML 404."""
    detail = "Not found."
    return JsonResponse({"detail": detail, "errors": {"path": [detail]}}, status=404)
