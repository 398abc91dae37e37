"""Rate limits on refused API calls (docs/deployment.md, rate limits).

Two DRF throttles count refusals: a missing, malformed or refused credential
(the 401/403 an API view answers before any of its own code runs). One counts
per API key prefix, one per client address. They are DRF's SimpleRateThrottle,
asked only when a call is refused: under the rate the refusal is recorded and
answered as before; over it, the call is answered 429 with Retry-After.

A valid key is never throttled: the limits count refusals, so a flood aimed
at a scribe's key prefix, or coming from the address a scribe vendor shares
with a misconfigured client, cannot lock the scribe out. What the flood gets
is a cheap refusal (one indexed query, no audit write after the minute's
first: notes.api_keys.ai_source_key_refusal_record).

The counters live in the default cache, which must be shared by every web
process (Redis in production, see CACHES in settings). The client address is
REMOTE_ADDR; X-Forwarded-For counts only with REST_FRAMEWORK["NUM_PROXIES"]
(API_TRUSTED_PROXY_COUNT) trusted proxies in front.
"""

from rest_framework import exceptions
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from notes.api_keys import ai_source_key_refusal_record, api_key_prefix


class _RefusalThrottle(SimpleRateThrottle):
    def get_rate(self) -> str:
        # Read per call, not frozen at import as DRF's THROTTLE_RATES is, so a
        # changed setting (override_settings in tests) takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]


class RefusedKeyPrefixThrottle(_RefusalThrottle):
    """Refusals of one key prefix, whoever sends them (a distributed guess at
    one key). Calls without a well-formed key are not counted here."""

    scope = "api_refused_key"

    def get_cache_key(self, request, view) -> str | None:
        prefix = api_key_prefix(bearer_token(request))
        return None if prefix is None else self.cache_format % {"scope": self.scope, "ident": prefix}


class UnauthenticatedAddressThrottle(_RefusalThrottle):
    """Refusals from one client address, whatever credential they carry (one
    client trying many prefixes, or calling with none)."""

    scope = "api_unauthenticated"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def bearer_token(request) -> str:
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class RefusalThrottledMixin:
    """For API views: a refused call is counted by the refusal throttles, and
    answered 429 once one of them is over its rate. Every refusal that names a
    key prefix is also counted for the audit log, 429s included."""

    refusal_throttle_classes = (RefusedKeyPrefixThrottle, UnauthenticatedAddressThrottle)

    def handle_exception(self, exc):
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            exc = self.refusal_throttled(exc)
        return super().handle_exception(exc)

    def refusal_throttled(self, exc: exceptions.APIException) -> exceptions.APIException:
        """exc, or Throttled when a throttle is over its rate. Every throttle
        is asked (and so counts the refusal), not only up to the first no."""
        request = self.request
        throttles = [throttle_class() for throttle_class in self.refusal_throttle_classes]
        waits = [throttle.wait() for throttle in throttles if not throttle.allow_request(request, self)]
        prefix = api_key_prefix(bearer_token(request))
        if prefix is not None:
            ai_source_key_refusal_record(
                prefix=prefix, reason=str(exc.detail), method=request.method, path=request.path
            )
        if waits:
            return exceptions.Throttled(wait=max((w for w in waits if w is not None), default=None))
        return exc
