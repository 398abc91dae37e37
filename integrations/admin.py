"""Operator views in the Django admin. Sandbox faults are set here (or by
tests); credentials are never shown."""

from django import forms
from django.contrib import admin

from integrations.egress import egress_check_url
from integrations.errors import EgressRefused
from integrations.models import Alert, Delivery, DeliveryAttempt, EHRConnection, FieldMapping, SandboxFaults


@admin.register(SandboxFaults)
class SandboxFaultsAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "conditional_create",
        "rate_503",
        "rate_429",
        "delay_ms",
        "drop_after_commit_rate",
        "rename_birth_date",
        "renamed_field",
    ]


class EHRConnectionAdminForm(forms.ModelForm):
    """The operator's edit of a connection's addresses meets the egress
    policy at save, as the practice admin's form does (every connect checks
    again; this only says so before a delivery fails)."""

    URL_FIELDS = ("base_url", "patient_query_url", "token_url")

    class Meta:
        model = EHRConnection
        # Credentials are never shown or edited here.
        fields = [
            "practice",
            "name",
            "kind",
            "is_sandbox",
            "base_url",
            "patient_query_url",
            "hl7_patient_check",
            "hl7_assigning_authority",
            "auth",
            "client_id",
            "token_url",
            "scope",
            "username",
            "is_active",
            "revoked_at",
        ]

    def clean(self):
        cleaned = super().clean()
        for field in self.URL_FIELDS:
            url = cleaned.get(field)
            if not url:
                continue
            try:
                egress_check_url(url, field=field)
            except EgressRefused as exc:
                self.add_error(field, exc.message)
        return cleaned


@admin.register(EHRConnection)
class EHRConnectionAdmin(admin.ModelAdmin):
    form = EHRConnectionAdminForm
    list_display = ["name", "practice", "kind", "is_sandbox", "is_active", "revoked_at"]
    exclude = ["credentials_encrypted"]
    readonly_fields = [
        "supports_conditional_create",
        "supports_provenance",
        "metadata_checked_at",
        "metadata_summary",
        "schema_checked_at",
        "schema_problems",
    ]


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "started_at", "finished_at", "outcome", "http_status", "ehr_id", "detail"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    # Read-only: state changes go through integrations.services.
    list_display = ["pk", "practice", "state", "attempts", "ehr_id", "updated_at"]
    list_filter = ["state"]
    inlines = [DeliveryAttemptInline]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    # Read-only: acknowledge and resolve on /integrations/alerts/, which audits who did it.
    list_display = ["created_at", "practice", "kind", "count", "acknowledged_at", "resolved_at"]
    list_filter = ["kind"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(FieldMapping)
class FieldMappingAdmin(admin.ModelAdmin):
    list_display = ["template", "version", "is_active", "created_at"]

    def has_change_permission(self, request, obj=None):
        return False  # versions are immutable; save a new one through mapping_save
