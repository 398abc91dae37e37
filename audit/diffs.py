"""Inline diffs of edit events for the timeline, built from escaped text.

A signed note's edit diffs were computed once, at signing, and stored with
its attribution (NoteAttribution.event_diffs, as [op, length] runs over the
event's own before and after texts): the timeline rebuilds them from those,
without diffing. Events of a note not yet signed (or discarded) are diffed
here, with the same bounded engine (notes.review_diff)."""

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from audit.attribution import section_text
from notes.review_diff import diff_from_runs, diff_texts


def _html(ops) -> SafeString:
    """<del>/<ins> markup of diff pieces. Every piece of text is escaped
    before it is wrapped, so note text cannot inject markup."""
    parts = []
    for op, text in ops:
        escaped = escape(text)
        if op == 0:
            parts.append(escaped)
        elif op == 1:
            parts.append(f'<ins class="diff-ins">{escaped}</ins>')
        else:
            parts.append(f'<del class="diff-del">{escaped}</del>')
    return mark_safe("".join(parts))  # noqa: S308 - every fragment above is escaped


def diff_html(before: str, after: str) -> SafeString:
    """The markup of the change from before to after."""
    return _html(diff_texts(before or "", after or "").ops)


def event_texts(event) -> tuple[str, str] | None:
    """The before and after texts of an edit-like event (text and/or codes), else None."""
    before, after = event.before, event.after
    if not isinstance(before, dict) or not isinstance(after, dict):
        return None
    if "text" not in before and "codes" not in before:
        return None
    return (
        section_text(before.get("text") or "", before.get("codes")),
        section_text(after.get("text") or "", after.get("codes")),
    )


def event_diff_html(event, stored: dict | None = None) -> SafeString | None:
    """The diff of an edit-like event, else None. stored: the event diffs
    kept with the note's attribution; an event found there is not diffed again."""
    texts = event_texts(event)
    if texts is None:
        return None
    runs = (stored or {}).get(str(event.seq))
    if runs is not None:
        try:
            return _html(diff_from_runs(*texts, runs))
        except ValueError:
            pass  # runs that do not fit the event's texts: show a fresh diff rather than a wrong one
    return _html(diff_texts(*texts).ops)
