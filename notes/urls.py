from django.urls import include, path, re_path

from notes import api, feedback_api, intake_api, views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("queue/", views.queue, name="queue"),
    path("signed/", views.signed_notes, name="signed_notes"),
    path("notes/<int:note_id>/", views.note_detail, name="note_detail"),
    path("clients/", views.client_list, name="client_list"),
    path("clients/<int:client_id>/", views.client_detail, name="client_detail"),
    path("clients/<int:client_id>/consent/", views.client_consent, name="client_consent"),
    path("audit/", views.audit_log, name="audit_log"),
    path("", include("notes.review_urls")),
    path("", include("notes.cosign_urls")),
    path("", include("notes.feedback_urls")),
]

api_urlpatterns = [
    path("notes", api.NoteListApi.as_view(), name="api_note_list"),
    path("notes/<int:note_id>", api.NoteDetailApi.as_view(), name="api_note_detail"),
    path("clients/<int:client_id>", api.ClientDetailApi.as_view(), name="api_client_detail"),
    path("drafts", intake_api.DraftCreateApi.as_view(), name="api_draft_create"),
    # Any segment, so a malformed id gets the API's JSON 404, not the HTML one.
    re_path(r"^drafts/(?P<draft_id>[^/]+)$", intake_api.DraftDetailApi.as_view(), name="api_draft_detail"),
    path("feedback", feedback_api.FeedbackListApi.as_view(), name="api_feedback_list"),
]
