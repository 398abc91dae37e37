"""URLs of the review screen (notes/review_views.py)."""

from django.urls import path

from notes import review_views as views
from notes import vocabulary_views

urlpatterns = [
    path("notes/<int:note_id>/review/", views.review, name="review"),
    path("notes/<int:note_id>/sections/<slug:section_key>/", views.section_save, name="review_section_save"),
    path("notes/<int:note_id>/flags/<int:flag_id>/place/", views.flag_place, name="review_flag_place"),
    path("notes/<int:note_id>/flags/<int:flag_id>/fix-code/", views.flag_fix_code, name="review_flag_fix_code"),
    path("notes/<int:note_id>/flags/<int:flag_id>/choose-term/", views.flag_choose_term, name="review_flag_term"),
    path("notes/<int:note_id>/flags/<int:flag_id>/keep-term/", views.flag_keep_term, name="review_flag_keep_term"),
    path("notes/<int:note_id>/flags/<int:flag_id>/acknowledge/", views.flag_acknowledge, name="review_flag_ack"),
    path("notes/<int:note_id>/flags/<int:flag_id>/dismiss/", views.flag_dismiss, name="review_flag_dismiss"),
    path("notes/<int:note_id>/sign/", views.sign, name="review_sign"),
    path("notes/<int:note_id>/discard/", views.discard, name="review_discard"),
    path("notes/<int:note_id>/amend/", views.amend, name="review_amend"),
    path("notes/<int:note_id>/history/", views.history, name="review_history"),
    path("notes/<int:note_id>/heartbeat/", views.heartbeat, name="review_heartbeat"),
    path("step-up/", views.step_up, name="review_step_up"),
    path("icd10/search/", views.icd10_lookup, name="review_icd10_search"),
    path("vocabulary/search/", views.vocabulary_lookup, name="review_vocabulary_search"),
    path("preferences/shortcuts/", views.shortcuts_preference, name="review_shortcuts"),
    path("vocabulary/proposals/", vocabulary_views.proposals, name="vocabulary_proposals"),
    path(
        "vocabulary/proposals/<int:proposal_id>/<str:decision>/",
        vocabulary_views.proposal_decide,
        name="vocabulary_proposal_decide",
    ),
]
