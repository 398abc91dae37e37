"""Shared steps of the people tests: invite through the admin's page, read the
link from the email, accept, enroll with a code computed from the page's
otpauth URI."""

import re
from base64 import b32decode
from urllib.parse import parse_qs, urlparse

from django.core import mail
from django.test import Client as DjangoClient
from django_otp.oath import TOTP

from audit.models import AuditEvent

NEW_PASSWORD = "quiet meadow lantern 42"


def invite(admin_browser, email: str, role: str = "clinician", **fields):
    return admin_browser.post("/practice/people/", {"email": email, "role": role, **fields})


def link_from_last_email() -> str:
    body = mail.outbox[-1].body
    return re.search(r"https?://\S+/accounts/invitation/\S+/", body).group(0)


def path_of(link: str) -> str:
    return urlparse(link).path


def otpauth_from_page(html: str) -> str:
    return re.search(r'data-otpauth="([^"]+)"', html).group(1).replace("&amp;", "&")


def code_for(uri: str, *, offset_steps: int = 0) -> str:
    """The code an authenticator app would show for this otpauth URI."""
    query = parse_qs(urlparse(uri).query)
    secret = query["secret"][0]
    key = b32decode(secret + "=" * (-len(secret) % 8))
    totp = TOTP(key, step=int(query.get("period", ["30"])[0]), digits=int(query.get("digits", ["6"])[0]))
    totp.time = totp.time + offset_steps * totp.step
    return f"{totp.token():06d}"


def accept_and_enroll(link: str, password: str = NEW_PASSWORD):
    """A fresh browser that accepts the invitation and enrolls; returns it,
    the page with the backup codes, and the otpauth URI."""
    browser = DjangoClient()
    response = browser.get(path_of(link), follow=True)
    assert response.status_code == 200, response.content[:300]
    response = browser.post("/accounts/invitation/accept/", {"password1": password, "password2": password})
    assert response.status_code == 302 and response["Location"] == "/accounts/enroll/"
    page = browser.get("/accounts/enroll/").content.decode()
    uri = otpauth_from_page(page)
    done = browser.post("/accounts/enroll/", {"otp_token": code_for(uri)})
    assert done.status_code == 200, done.content[:500]
    return browser, done.content.decode(), uri


def backup_codes(html: str) -> list[str]:
    block = re.search(r'<ul id="backup-codes">(.*?)</ul>', html, re.S).group(1)
    return re.findall(r"<code>([^<]+)</code>", block)


def last_event(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).order_by("-pk").first()
