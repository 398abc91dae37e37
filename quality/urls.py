from django.urls import path

from quality import metrics_views, views

app_name = "quality"

urlpatterns = [
    path("quality/queue/", views.qa_queue, name="queue"),
    path("quality/notes/<int:note_id>/review/", views.qa_review, name="review"),
    path("quality/settings/", views.sampling_settings, name="settings"),
    path("quality/pulse/", views.pulse, name="pulse"),
    path("pilot/metrics/", metrics_views.pilot_metrics, name="metrics"),
    path("pilot/metrics/<slug:chart>.csv", metrics_views.pilot_metrics_csv, name="metrics_csv"),
]
