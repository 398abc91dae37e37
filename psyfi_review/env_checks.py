"""Checks for settings that django-environ reads as plain strings but whose
shape matters: a wrong value must stop start-up with the variable's name,
never surface later as an unreadable secret or a duplicate note at an EHR.
Error texts name the variable and never echo a secret."""

from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured


def fernet_keys(name: str, values: list[str], *, required: bool) -> list[str]:
    """The comma-separated Fernet keys of `name`, newest first, blanks and
    surrounding spaces dropped. Raises ImproperlyConfigured when one is not a
    Fernet key, or when none is given and `required`."""
    keys = [value.strip() for value in values if value.strip()]
    if required and not keys:
        raise ImproperlyConfigured(
            f"Set the {name} environment variable: at least one Fernet key "
            '(python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())").'
        )
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: key {position} is not a Fernet key (32 url-safe base64-encoded bytes)."
            ) from None
    return keys


def absolute_uri(name: str, value: str) -> str:
    """Raises ImproperlyConfigured unless `value` is an absolute URI (a
    scheme, then something), as FHIR requires of Identifier.system."""
    parts = urlsplit(value)
    if not parts.scheme or any(c.isspace() for c in value) or not (parts.netloc or parts.path.strip("/")):
        raise ImproperlyConfigured(f"{name} must be an absolute URI (e.g. https://notes.example.org/note-id).")
    return value


def positive_number(name: str, value: str) -> float:
    """`value` as a float; raises ImproperlyConfigured unless it is a finite
    number above zero (a zero or negative age would alert on every note)."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not (0 < number < float("inf")):
        raise ImproperlyConfigured(f"{name} must be a number above zero, not {value!r}.")
    return number
