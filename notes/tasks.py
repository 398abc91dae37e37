"""Celery tasks of the notes app: thin wrappers around services."""

from celery import shared_task

from notes.api_keys import ai_source_key_refusals_flush


@shared_task(name="notes.api_key_refusals_flush")
def api_key_refusals_flush_task() -> int:
    """Every minute (beat): the counts of refused API keys after each
    minute's first refusal, as audit events."""
    return ai_source_key_refusals_flush()
