"""GET /api/v1/feedback: clinicians' feedback on the drafts of the calling
AI source, for the scribe vendor (issue 15, point 7; docs/intake.md).

The key's AI source scopes everything: another source's feedback does not
exist for it. Each item names the draft (our id and the scribe's own
draft_id) and the feedback fields, and nothing else: no client, clinician or
note text leaves through here. Pages of 50 by default, oldest first, so a
vendor can page through everything and come back for what is new
(`updated_since`).
"""

from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, serializers
from rest_framework.pagination import PageNumberPagination

from notes.intake_api import _ERRORS, ErrorSerializer, IntakeApiView
from notes.models import DraftFeedback


class FeedbackPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request) -> int:
        # DRF falls back to the default on a malformed size; a scribe that
        # sent one should hear about it instead (a 400 with the field).
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if size < 1:
            raise exceptions.ValidationError({"page_size": [f"Use a whole number from 1 to {self.max_page_size}."]})
        return min(size, self.max_page_size)


class FeedbackSerializer(serializers.ModelSerializer):
    draft_id = serializers.IntegerField(help_text="Our draft id (the `id` POST /api/v1/drafts answered with)")
    scribe_draft_id = serializers.CharField(
        source="draft.external_id", allow_blank=True, help_text="Your own `draft_id`, when you sent one"
    )
    rating = serializers.IntegerField(allow_null=True, help_text="1 (poor) to 5 (excellent), or null")
    reasons = serializers.ListField(
        child=serializers.ChoiceField(choices=DraftFeedback.Reason.values),
        help_text="What was wrong with the draft, any of: " + ", ".join(DraftFeedback.Reason.values),
    )
    comment = serializers.CharField(allow_blank=True, help_text="The clinician's words about the draft")

    class Meta:
        model = DraftFeedback
        fields = ["id", "draft_id", "scribe_draft_id", "rating", "reasons", "comment", "created_at", "updated_at"]


class FeedbackListApi(IntakeApiView, generics.ListAPIView):
    serializer_class = FeedbackSerializer
    pagination_class = FeedbackPagination

    def get_queryset(self):
        feedback = (
            DraftFeedback.objects.filter(ai_source=self.request.auth.ai_source)
            .select_related("draft")
            .only("id", "draft_id", "draft__external_id", "rating", "reasons", "comment", "created_at", "updated_at")
            .order_by("id")
        )
        since = self.request.query_params.get("updated_since")
        if since is not None:
            try:
                when = parse_datetime(since) if since else None
            except ValueError:  # well formed but impossible, e.g. February 30
                when = None
            if when is None or when.tzinfo is None:
                raise exceptions.ValidationError(
                    {"updated_since": ["Use an ISO 8601 date and time with a timezone offset."]}
                )
            feedback = feedback.filter(updated_at__gte=when)
        return feedback

    @extend_schema(
        operation_id="feedback_list",
        summary="Clinicians' feedback on your drafts",
        description="Ratings (1-5), reasons and comments clinicians gave on drafts your AI source posted, "
        "oldest first, in pages (`page`, `page_size` up to 200). Each item names the draft and nothing about "
        "the client or the note. Only your own source's feedback is visible.",
        parameters=[
            OpenApiParameter(
                "updated_since",
                str,
                OpenApiParameter.QUERY,
                required=False,
                description="Only feedback given or changed at or after this time (ISO 8601 with an offset)",
            )
        ],
        responses={
            200: FeedbackSerializer(many=True),
            400: OpenApiResponse(
                ErrorSerializer, description="`updated_since` is not a time with an offset, or a bad `page_size`"
            ),
            404: OpenApiResponse(ErrorSerializer, description="No such page"),
            **{k: _ERRORS[k] for k in (401, 403, 406, 429)},
        },
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
