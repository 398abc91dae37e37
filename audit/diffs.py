"""Inline diffs of edit events for the timeline, built from escaped text."""

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from audit.attribution import attribution_diff, section_text


def diff_html(before: str, after: str) -> SafeString:
    """<del>/<ins> markup of the change from before to after. Every piece of
    text is escaped before it is wrapped, so note text cannot inject markup."""
    parts = []
    for op, text in attribution_diff(before or "", after or ""):
        escaped = escape(text)
        if op == 0:
            parts.append(escaped)
        elif op == 1:
            parts.append(f'<ins class="diff-ins">{escaped}</ins>')
        else:
            parts.append(f'<del class="diff-del">{escaped}</del>')
    return mark_safe("".join(parts))  # noqa: S308 - every fragment above is escaped


def event_diff_html(event) -> SafeString | None:
    """The diff of an edit-like event (before/after with text and/or codes), else None."""
    before, after = event.before, event.after
    if not isinstance(before, dict) or not isinstance(after, dict):
        return None
    if "text" not in before and "codes" not in before:
        return None
    return diff_html(
        section_text(before.get("text") or "", before.get("codes")),
        section_text(after.get("text") or "", after.get("codes")),
    )
