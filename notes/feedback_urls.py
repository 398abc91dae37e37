"""URL of the draft-feedback form (notes/feedback_views.py)."""

from django.urls import path

from notes import feedback_views

urlpatterns = [
    path("notes/<int:note_id>/feedback/", feedback_views.feedback_save, name="review_feedback"),
]
