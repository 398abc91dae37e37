"""{% qa_result note %}: the QA verdict on a note, for pages that already
fetched the note through a scoped selector (the clinician's note page)."""

from django import template

from quality.selectors import qa_review_for_note

register = template.Library()


@register.inclusion_tag("quality/_qa_result.html")
def qa_result(note):
    return {"review": qa_review_for_note(note=note) if note.is_signed else None}
