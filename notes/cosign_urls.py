"""URLs of the supervisor's co-signature pages (notes/cosign_views.py)."""

from django.urls import path

from notes import cosign_views as views

urlpatterns = [
    path("cosign/", views.cosign_queue, name="cosign_queue"),
    path("cosign/<int:note_id>/", views.cosign_review, name="cosign_review"),
    path("cosign/<int:note_id>/sign/", views.cosign_sign, name="cosign_sign"),
    path("cosign/<int:note_id>/return/", views.cosign_return, name="cosign_return"),
]
