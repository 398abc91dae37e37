"""Who is acting, for the audit log: the request's id, address and user agent
are kept in a context variable by audit.middleware so services need not pass
the request down."""

import contextvars
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip_address: str | None = None
    user_agent: str = ""
    # The login session (request.session), where the audit session's key is
    # kept so the user agent is stored once per session (audit.services).
    session: object = field(default=None, compare=False, hash=False, repr=False)


current_request: contextvars.ContextVar[RequestContext] = contextvars.ContextVar(
    "current_request",
    default=RequestContext(),  # noqa: B039 - frozen, so safe to share
)
