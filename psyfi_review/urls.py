from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django_otp.admin import OTPAdminSite
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny

from notes.api_errors import api_not_found
from notes.urls import api_urlpatterns

# The operator's Django admin also needs the second factor.
admin.site.__class__ = OTPAdminSite

urlpatterns = [
    path("django-admin/", admin.site.urls),
    path("api/v1/", include(api_urlpatterns)),
    path(
        "api/v1/schema",
        SpectacularAPIView.as_view(permission_classes=[AllowAny], authentication_classes=[]),
        name="api_schema",
    ),
    # Anything else under /api/ (a non-integer id too) gets the API's JSON 404.
    re_path(r"^api/", api_not_found),
    path("integrations/", include("integrations.urls")),
    # The built-in sandbox EHR: demo and tests only (off in settings_production).
    *([path("sandbox/fhir/", include("integrations.sandbox.urls"))] if settings.SANDBOX_EHR_ENABLED else []),
    path("audit/", include("audit.urls")),
    path("", include("accounts.urls")),
    path("practice/", include("practice_admin.urls")),
    path("", include("quality.urls")),
    path("", include("notes.urls")),
]
