from django.contrib import admin
from django.urls import include, path
from django_otp.admin import OTPAdminSite
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny

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
    path("integrations/", include("integrations.urls")),
    path("sandbox/fhir/", include("integrations.sandbox.urls")),
    path("audit/", include("audit.urls")),
    path("", include("notes.urls")),
]
