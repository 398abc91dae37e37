"""Errors of the audit app, as classes a caller can catch by kind."""


class AnchorKeyError(Exception):
    """An audit anchor key is missing or unreadable. The message names the
    setting to fix; it never contains key material."""


class AnchorKeyMissing(AnchorKeyError):
    """No signing key is configured (and none may be made up here)."""
