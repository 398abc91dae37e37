from notes.errors import DomainError


class DeliveryRefused(DomainError):
    """The delivery layer refuses to send this note (unsigned, psychotherapy
    notes, wrong kind of client for the connection). Checked here whatever the
    caller, so no UI, API or admin path can get around it."""

    status_code = 409
