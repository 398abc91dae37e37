"""Celery tasks of the audit app: thin wrappers around services."""

from celery import shared_task

from audit.retention import audit_retention_report


@shared_task(name="audit.retention_report")
def audit_retention_report_task() -> dict:
    return {str(k): v for k, v in audit_retention_report().items()}
