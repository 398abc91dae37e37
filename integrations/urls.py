from django.urls import path

from integrations import alert_views, filing_views, status_views, views

app_name = "integrations"
urlpatterns = [
    path("deliveries/", views.delivery_dashboard, name="dashboard"),
    path("deliveries/<int:delivery_id>/reprocess/", views.delivery_reprocess, name="reprocess"),
    path("deliveries/<int:delivery_id>/file/", filing_views.filing_page, name="filing"),
    path("deliveries/<int:delivery_id>/file/note.pdf", filing_views.filing_pdf, name="filing_pdf"),
    path("ehr-status/", status_views.note_ehr_status, name="ehr_status"),
    path("connections/", views.connection_list, name="connections"),
    path("connections/<int:connection_id>/test/", views.connection_test, name="connection_test"),
    path("connections/<int:connection_id>/revoke/", views.connection_revoke, name="connection_revoke"),
    path(
        "connections/<int:connection_id>/schema-check/",
        alert_views.connection_schema_check,
        name="connection_schema_check",
    ),
    path("alerts/", alert_views.alert_list, name="alerts"),
    path("alerts/settings/", alert_views.alert_settings, name="alert_settings"),
    path("alerts/<int:alert_id>/acknowledge/", alert_views.alert_acknowledge, name="alert_acknowledge"),
    path("alerts/<int:alert_id>/resolve/", alert_views.alert_resolve, name="alert_resolve"),
    path("mappings/", views.mapping_list, name="mappings"),
    path("mappings/<int:mapping_id>/export/", views.mapping_export, name="mapping_export"),
    path("mappings/<int:mapping_id>/diff/<int:other_id>/", views.mapping_diff, name="mapping_diff"),
    path("templates/<int:template_id>/mapping/import/", views.mapping_import, name="mapping_import"),
    path(".well-known/jwks.json", views.jwks, name="jwks"),
]
