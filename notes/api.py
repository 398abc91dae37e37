"""Read API for the people of a practice (session + OTP). The scribes' intake
API lives in notes/intake_api.py."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import audit_phi_access
from notes import selectors
from notes.api_throttles import RefusalThrottledMixin


class ApiErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()

    class Meta:
        ref_name = "ApiError"


_ERRORS = {
    403: OpenApiResponse(ApiErrorSerializer, description="Not logged in with password and one-time code"),
    404: OpenApiResponse(ApiErrorSerializer, description="No such object in your practice, or a malformed id"),
    406: OpenApiResponse(ApiErrorSerializer, description="Only application/json answers are offered"),
    429: OpenApiResponse(ApiErrorSerializer, description="Too many unauthenticated calls from this address"),
}
LIST_ERRORS = {k: v for k, v in _ERRORS.items() if k != 404}


class NoteListApi(RefusalThrottledMixin, APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        state = serializers.CharField()
        version = serializers.IntegerField()
        client = serializers.IntegerField(source="client_id")
        clinician = serializers.IntegerField(source="clinician_id")
        high_risk = serializers.BooleanField()
        signed_at = serializers.DateTimeField(allow_null=True)

        class Meta:
            ref_name = "NoteSummary"

    @extend_schema(operation_id="notes_list", responses={200: OutputSerializer(many=True), **LIST_ERRORS})
    def get(self, request):
        notes = selectors.note_list_for_user(user=request.user).order_by("-pk")[:500]
        return Response(self.OutputSerializer(notes, many=True).data)


class NoteDetailApi(RefusalThrottledMixin, APIView):
    class OutputSerializer(serializers.Serializer):
        class SectionSerializer(serializers.Serializer):
            key = serializers.CharField()
            label = serializers.CharField()
            text = serializers.CharField()
            ai_text = serializers.CharField()
            codes = serializers.JSONField()

            class Meta:
                ref_name = "NoteSection"

        id = serializers.IntegerField()
        state = serializers.CharField()
        version = serializers.IntegerField()
        client = serializers.IntegerField(source="client_id")
        high_risk = serializers.BooleanField()
        signed_at = serializers.DateTimeField(allow_null=True)
        content_hash = serializers.CharField()
        sections = SectionSerializer(many=True, source="sections.all")

        class Meta:
            ref_name = "Note"

    @extend_schema(operation_id="notes_retrieve", responses={200: OutputSerializer, **_ERRORS})
    def get(self, request, note_id: int):
        note = selectors.note_get_for_user(user=request.user, note_id=note_id)
        audit_phi_access(user=request.user, note=note)
        return Response(self.OutputSerializer(note).data)


class ClientDetailApi(RefusalThrottledMixin, APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        given_name = serializers.CharField()
        family_name = serializers.CharField()
        date_of_birth = serializers.DateField()
        ehr_patient_id = serializers.CharField()
        synthetic = serializers.BooleanField()
        has_consent = serializers.SerializerMethodField()

        class Meta:
            ref_name = "Client"

        def get_has_consent(self, client) -> bool:
            return client.active_consent is not None

    @extend_schema(operation_id="clients_retrieve", responses={200: OutputSerializer, **_ERRORS})
    def get(self, request, client_id: int):
        client = selectors.client_get_for_user(user=request.user, client_id=client_id)
        audit_phi_access(user=request.user, client=client)
        return Response(self.OutputSerializer(client).data)
