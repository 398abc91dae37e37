"""The project's URLs plus one write API used only by test_history_user: the
project has no clinician write API yet, and the point is to show that a DRF
view's writes are attributed through the real middleware stack."""

from django.urls import include, path
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from notes import selectors, services


class SectionEditApi(APIView):
    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(allow_blank=True)

    def put(self, request, note_id: int, section_key: str):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        note = selectors.note_get_for_user(user=request.user, note_id=note_id)
        services.note_edit_section(
            note=note, section_key=section_key, text=data.validated_data["text"], actor=request.user
        )
        return Response({"ok": True})


urlpatterns = [
    path("test-api/notes/<int:note_id>/sections/<slug:section_key>", SectionEditApi.as_view()),
    path("", include("psyfi_review.urls")),
]
