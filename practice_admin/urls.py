from django.urls import path

from practice_admin.views import clients, scribes, templates, vocabulary

app_name = "practice_admin"
urlpatterns = [
    path("clients/", clients.client_list, name="client_list"),
    path("clients/new/", clients.client_create, name="client_create"),
    path("clients/import/", clients.client_import, name="client_import"),
    path("clients/<int:client_id>/", clients.client_detail, name="client_detail"),
    path("clients/<int:client_id>/edit/", clients.client_edit, name="client_edit"),
    path("clients/<int:client_id>/consent/", clients.consent_record, name="consent_record"),
    path("clients/<int:client_id>/consent/revoke/", clients.consent_revoke, name="consent_revoke"),
    path("consent-disclosure/", clients.disclosure, name="disclosure"),
    path("templates/", templates.template_list, name="templates"),
    path("templates/<int:template_id>/", templates.template_detail, name="template_detail"),
    path("templates/<int:template_id>/draft/", templates.template_draft_start, name="template_draft_start"),
    path("templates/<int:template_id>/diff/", templates.template_diff, name="template_diff"),
    path("templates/<int:template_id>/psychotherapy/", templates.template_psychotherapy, name="template_psychotherapy"),
    path("templates/<int:template_id>/v<int:version>/publish/", templates.template_publish, name="template_publish"),
    path(
        "templates/<int:template_id>/v<int:version>/discard/",
        templates.template_draft_discard,
        name="template_draft_discard",
    ),
    path("templates/<int:template_id>/v<int:version>/preview/", templates.template_preview, name="template_preview"),
    path("vocabulary/", vocabulary.term_list, name="terms"),
    path("vocabulary/import/", vocabulary.term_import, name="term_import"),
    path("vocabulary/<int:term_id>/", vocabulary.term_detail, name="term_detail"),
    path("vocabulary/<int:term_id>/<str:action>/", vocabulary.term_action, name="term_action"),
    path("scribes/", scribes.scribe_list, name="scribes"),
    path("scribes/<int:source_id>/keys/", scribes.key_create, name="key_create"),
    path("scribes/keys/<int:key_id>/rotate/", scribes.key_rotate, name="key_rotate"),
    path("scribes/keys/<int:key_id>/revoke/", scribes.key_revoke, name="key_revoke"),
    path("scribes/intake-guide/", scribes.intake_guide, name="intake_guide"),
]
