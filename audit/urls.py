from django.urls import path

from audit import views

urlpatterns = [
    path("notes/<int:note_id>/timeline/", views.note_timeline, name="audit_note_timeline"),
    path("notes/<int:note_id>/provenance.json", views.note_provenance, name="audit_note_provenance"),
    path("access/", views.phi_access, name="audit_phi_access"),
    path("export/events.csv", views.export_csv, name="audit_export_csv"),
    path("export/events.json", views.export_json, name="audit_export_json"),
    path("deliveries/<int:delivery_id>/auditevents.json", views.delivery_auditevents, name="audit_delivery_events"),
]
