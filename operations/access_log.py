"""gunicorn's access logger with the invitation token masked
(deploy/gunicorn.conf.py names it as logger_class).

An invitation link carries its token in the path (/accounts/invitation/<token>/),
and the access log names the path: anyone reading the logs could otherwise
accept a pending invitation. The token becomes "…" in every atom that could
hold the path (the path, the request line, the Referer, environ and header
atoms), so whatever access_log_format an operator chooses, it never appears.
"""

import re

from gunicorn.glogging import Logger

# /accounts/invitation/accept/ carries no secret; any other segment there is a token.
_INVITATION_TOKEN = re.compile(r"(/accounts/invitation/)(?!accept(?:/|$))[^/?#\s]+")
MASK = "…"


def mask_invitation_tokens(text: str) -> str:
    return _INVITATION_TOKEN.sub(r"\g<1>" + MASK, text)


class MaskingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key, value in atoms.items():
            if isinstance(value, str) and "/accounts/invitation/" in value:
                atoms[key] = mask_invitation_tokens(value)
        return atoms
