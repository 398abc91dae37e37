from notes.errors import DomainError


class DeliveryRefused(DomainError):
    """The delivery layer refuses to send this note (unsigned, psychotherapy
    notes, wrong kind of client for the connection). Checked here whatever the
    caller, so no UI, API or admin path can get around it."""

    status_code = 409


class CredentialsUnreadable(DomainError):
    """No configured key decrypts the stored credentials."""

    status_code = 409


class ConnectionInvalid(DomainError):
    """A connection's settings are refused (plain http off loopback, bad URL)."""

    status_code = 400


class EgressRefused(ConnectionInvalid):
    """The egress policy (integrations.egress) refuses the address an EHR
    host is or resolves to: at save a form error, at connect a delivery that
    fails for good with a configuration alert, since retrying cannot help."""


class RedirectRefused(ConnectionInvalid):
    """An EHR or token endpoint answered a redirect. Redirects are not
    followed (a write or a secret would go where nobody configured)."""

    def __init__(self, message: str, *, http_status: int, field: str | None = None):
        super().__init__(message, field=field)
        self.http_status = http_status


class MappingInvalid(DomainError):
    """A field mapping document does not fit its template or the schema."""

    status_code = 400

    def __init__(self, message: str, *, errors: dict | None = None, field: str | None = None):
        super().__init__(message, field=field)
        self.errors = errors or {}


class PayloadInvalid(DomainError):
    """A built payload fails validation; it never leaves."""

    status_code = 422


class AlertRefused(DomainError):
    """An acknowledge or resolve that does not fit the alert's state."""

    status_code = 409
