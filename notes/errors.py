"""Domain errors a person can read. The API's exception handler and the HTML
views turn them into 4xx answers and messages; they never become a 500."""


class DomainError(Exception):
    """Base: a request that breaks a rule of the domain."""

    status_code = 400
    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field


class NotPermitted(DomainError):
    """The actor's role or relation to the object does not allow the action."""

    status_code = 403


class IllegalTransition(DomainError):
    """The note's state does not allow the action (e.g. editing a signed note)."""

    status_code = 409


class SignBlocked(DomainError):
    """Signing is refused: open flags, no consent, or no recent step-up."""

    status_code = 409


class StepUpRequired(SignBlocked):
    field = "otp_token"


class SectionConflict(DomainError):
    """A save named a section version older than the one stored: the section
    was saved meanwhile (another tab or device). Carries the stored section
    so the clinician can compare both texts and choose; nothing is written."""

    status_code = 409
    field = "text"

    def __init__(self, message: str, *, section):
        super().__init__(message)
        self.section = section
