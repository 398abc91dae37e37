"""The Prometheus text endpoint, `/metrics` (prometheus-client).

Counts only, across all practices: no practice, client or note appears in a
label. Still, the numbers describe a practice's work (how many notes wait,
how long), so the endpoint is closed unless the operator sets
METRICS_BEARER_TOKEN, and then answers only a scrape that sends it as
`Authorization: Bearer <token>` (docs/deployment.md, "Health and metrics").

Every value is read at scrape time from the database and the broker, so
any number of web processes answer the same numbers and nothing is kept
between scrapes.
"""

import hmac
import logging

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# Not yet at the EHR and owed by the worker. "failed" waits for a person (an
# alert says so) and "awaiting_filing" for a manual filing; neither is the
# worker's backlog.
OUTSTANDING_STATES = ("pending", "waiting", "sending", "retrying", "unknown")


def broker_queue_depth(queue: str) -> int:
    """Messages waiting in `queue` at the broker. A queue the broker does not
    know yet (Redis deletes an empty list) holds none."""
    from kombu.exceptions import ChannelError

    from psyfi_review.celery import app

    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=3)
        try:
            return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
        except ChannelError:
            return 0


class PsyfiCollector(Collector):
    def collect(self):
        from integrations.models import Alert, Delivery

        deliveries = GaugeMetricFamily(
            "psyfi_deliveries", "Deliveries to the EHR by state (all practices).", labels=["state"]
        )
        counts = dict(
            Delivery.objects.order_by().values_list("state").annotate(n=Count("pk")).values_list("state", "n")
        )
        for state in Delivery.State.values:
            deliveries.add_metric([state], counts.get(state, 0))
        yield deliveries

        oldest = Delivery.objects.filter(state__in=OUTSTANDING_STATES).aggregate(at=Min("created_at"))["at"]
        yield GaugeMetricFamily(
            "psyfi_delivery_oldest_outstanding_age_seconds",
            "Age of the oldest delivery not yet at the EHR (pending, waiting, sending, retrying, unknown); "
            "0 when there is none.",
            value=(timezone.now() - oldest).total_seconds() if oldest else 0,
        )

        alerts = GaugeMetricFamily("psyfi_alerts_open", "Alerts not yet resolved, by kind.", labels=["kind"])
        open_counts = dict(
            Alert.objects.filter(resolved_at__isnull=True)
            .order_by()
            .values_list("kind")
            .annotate(n=Count("pk"))
            .values_list("kind", "n")
        )
        for kind in sorted(set(Alert.Kind.values) | set(open_counts)):
            alerts.add_metric([kind], open_counts.get(kind, 0))
        yield alerts

        from psyfi_review.celery import app

        queue = app.conf.task_default_queue
        depth = GaugeMetricFamily(
            "psyfi_broker_queue_depth", "Task messages waiting at the Celery broker.", labels=["queue"]
        )
        up = GaugeMetricFamily("psyfi_broker_up", "1 if the broker answered this scrape, else 0.")
        try:
            depth.add_metric([queue], broker_queue_depth(queue))
            up.add_metric([], 1)
        except Exception as exc:  # noqa: BLE001 - a down broker is a value, not a failed scrape
            logger.warning("metrics: broker did not answer: %s", type(exc).__name__)
            up.add_metric([], 0)
        yield depth
        yield up


def scrape_allowed(request) -> bool:
    token = settings.METRICS_BEARER_TOKEN
    if not token:
        return False
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


def metrics(request) -> HttpResponse:
    if not settings.METRICS_BEARER_TOKEN:
        # Off: the same answer as any unknown path, so it reveals nothing.
        return HttpResponse("Not Found", status=404, content_type="text/plain")
    if not scrape_allowed(request):
        response = HttpResponse("A bearer token is required.", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PsyfiCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
