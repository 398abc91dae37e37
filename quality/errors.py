"""Errors of the quality app are the clinical domain's (notes.errors), so the
views and the API's exception handler treat them alike."""

from notes.errors import DomainError, IllegalTransition, NotPermitted

__all__ = ["DomainError", "IllegalTransition", "NotPermitted"]
