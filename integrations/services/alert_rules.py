"""The rules that read the audit log and raise alerts (run by beat,
integrations.alert_rules_evaluate and integrations.audit_chain_check):

* phi_access_burst: one person viewed at least `phi_access_clients` distinct
  clients' records (phi.view events) within `phi_access_window_minutes`;
* after_hours_sign: at least `after_hours_signs` sign-offs (note.sign) by one
  person more than `after_hours_margin_minutes` before the working day's
  start or after its end, in the practice's time zone, in the last day
  (measured round the clock: a start later than the end is a night shift);
* api_key_refusals: at least `api_key_refusals` refused API-key calls
  (api_key.refused and the minute summaries, notes.api_keys) within
  `api_key_refusals_window_minutes`. Only keys of the practice count: an
  unknown prefix belongs to no practice and is answered by the API rate
  limits, not alerted (docs/operations.md);
* audit_chain: the practice's audit chain does not verify (audit.verify).

Thresholds are per practice (AlertRules); 0 turns a rule off. Each rule
counts only events after the last time a person resolved its alert, so a
resolved alert is raised again only by new events; while it is open, a run
that still finds the pattern counts a repeat."""

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count
from django.utils import timezone

from audit.models import AuditChainHead, AuditEvent
from audit.verify import audit_chain_verify
from integrations.models import Alert, AlertRules
from integrations.services.alerts import alert_raise, alert_rules_for
from notes.models import Practice

AFTER_HOURS_LOOKBACK = timedelta(days=1)
REFUSAL_ACTIONS = ("api_key.refused", "api_key.refused_summary")


@dataclass(frozen=True)
class Finding:
    kind: str
    dedup_key: str
    reason: str


def _resolved_since(practice_id: int, kind: str, key: str) -> datetime | None:
    return (
        Alert.objects.filter(practice_id=practice_id, kind=kind, dedup_key=key, resolved_at__isnull=False)
        .order_by("-resolved_at")
        .values_list("resolved_at", flat=True)
        .first()
    )


def _since(practice_id: int, kind: str, key: str, start: datetime) -> datetime:
    resolved = _resolved_since(practice_id, kind, key)
    return max(start, resolved) if resolved else start


def _people(user_ids) -> dict:
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(pk__in=list(user_ids))
    return {u.pk: (u.get_full_name() or u.get_username()) for u in users}


def _phi_access_findings(practice: Practice, rules: AlertRules, now: datetime) -> list[Finding]:
    if not rules.phi_access_clients:
        return []
    window = timedelta(minutes=rules.phi_access_window_minutes)
    start = now - window
    counts = (
        AuditEvent.objects.filter(practice=practice, action="phi.view", created_at__gte=start, actor_user__isnull=False)
        .values("actor_user_id")
        .annotate(clients=Count("client_id", distinct=True))
        .filter(clients__gte=rules.phi_access_clients)
    )
    candidates = {row["actor_user_id"]: row["clients"] for row in counts}
    names = _people(candidates)
    findings = []
    for user_id, clients in candidates.items():
        key = f"user:{user_id}"
        since = _since(practice.pk, Alert.Kind.PHI_ACCESS_BURST, key, start)
        if since != start:
            clients = (
                AuditEvent.objects.filter(
                    practice=practice, action="phi.view", created_at__gte=since, actor_user_id=user_id
                )
                .values("client_id")
                .distinct()
                .count()
            )
            if clients < rules.phi_access_clients:
                continue
        findings.append(
            Finding(
                Alert.Kind.PHI_ACCESS_BURST,
                key,
                f"{names.get(user_id, 'A user')} viewed the records of {clients} clients within "
                f"{rules.phi_access_window_minutes} minutes (threshold {rules.phi_access_clients}). "
                "See the PHI access log.",
            )
        )
    return findings


DAY_MINUTES = 24 * 60


def _minutes(value) -> int:
    return value.hour * 60 + value.minute


def minutes_outside_working_hours(at, start, end) -> int:
    """How far the time of day `at` lies outside the working day start-end,
    in minutes, on the 24-hour clock: 00:30 is 150 minutes after a day that
    ends at 22:00, not 21 hours before it starts. A day whose start is later
    than its end (a night shift, 22:00-06:00) runs over midnight. 0 inside."""
    m, s, e = _minutes(at), _minutes(start), _minutes(end)
    if (m - s) % DAY_MINUTES <= (e - s) % DAY_MINUTES:
        return 0
    return min((s - m) % DAY_MINUTES, (m - e) % DAY_MINUTES)


def _after_hours_findings(practice: Practice, rules: AlertRules, now: datetime) -> list[Finding]:
    if not rules.after_hours_signs:
        return []
    try:
        zone = zoneinfo.ZoneInfo(practice.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    start = now - AFTER_HOURS_LOOKBACK
    events = AuditEvent.objects.filter(
        practice=practice, action="note.sign", created_at__gte=start, actor_user__isnull=False
    ).values_list("actor_user_id", "created_at")
    outside: dict[int, list[datetime]] = {}
    for user_id, created_at in events:
        local = created_at.astimezone(zone)
        outside_by = minutes_outside_working_hours(local, rules.working_day_start, rules.working_day_end)
        if outside_by > rules.after_hours_margin_minutes:
            outside.setdefault(user_id, []).append(created_at)
    names = _people(outside)
    findings = []
    for user_id, times in outside.items():
        key = f"user:{user_id}"
        since = _since(practice.pk, Alert.Kind.AFTER_HOURS_SIGN, key, start)
        times = [t for t in times if t >= since]
        if len(times) < rules.after_hours_signs:
            continue
        last = max(times).astimezone(zone)
        findings.append(
            Finding(
                Alert.Kind.AFTER_HOURS_SIGN,
                key,
                f"{names.get(user_id, 'A user')} signed {len(times)} note(s) far outside working hours "
                f"({rules.working_day_start:%H:%M}-{rules.working_day_end:%H:%M}, more than "
                f"{rules.after_hours_margin_minutes} minutes outside), the last at {last:%Y-%m-%d %H:%M} "
                f"({practice.timezone}).",
            )
        )
    return findings


def _api_key_findings(practice: Practice, rules: AlertRules, now: datetime) -> list[Finding]:
    if not rules.api_key_refusals:
        return []
    key = "api_keys"
    start = now - timedelta(minutes=rules.api_key_refusals_window_minutes)
    since = _since(practice.pk, Alert.Kind.API_KEY_REFUSALS, key, start)
    details = AuditEvent.objects.filter(
        practice=practice, action__in=REFUSAL_ACTIONS, created_at__gte=since
    ).values_list("detail", flat=True)
    refused = sum(int((d or {}).get("count") or 1) for d in details)
    if refused < rules.api_key_refusals:
        return []
    return [
        Finding(
            Alert.Kind.API_KEY_REFUSALS,
            key,
            f"{refused} API calls with a refused key within {rules.api_key_refusals_window_minutes} minutes "
            f"(threshold {rules.api_key_refusals}). See api_key.refused in the audit log.",
        )
    ]


RULES = (_phi_access_findings, _after_hours_findings, _api_key_findings)


def alert_rules_evaluate(*, now: datetime | None = None, practice: Practice | None = None) -> list[Alert]:
    """Run the unusual-pattern rules over the recent audit log of every
    practice with recent events (or the one given); returns the alerts
    raised or counted."""
    now = now or timezone.now()
    if practice is not None:
        practices = [practice]
    else:
        recent = (
            AuditEvent.objects.filter(created_at__gte=now - AFTER_HOURS_LOOKBACK)
            .values_list("practice_id", flat=True)
            .distinct()
        )
        practices = list(Practice.objects.filter(pk__in=recent))
    raised = []
    for p in practices:
        rules = alert_rules_for(p)
        for rule in RULES:
            for finding in rule(p, rules, now):
                raised.append(
                    alert_raise(practice=p, kind=finding.kind, dedup_key=finding.dedup_key, reason=finding.reason)
                )
    return raised


def audit_chain_check(*, practice_id: int | None = None) -> list[Alert]:
    """Verify each practice's audit chain (audit.verify); a break raises an
    audit_chain alert naming the first broken event."""
    heads = AuditChainHead.objects.all()
    if practice_id is not None:
        heads = heads.filter(practice_id=practice_id)
    raised = []
    for pid in heads.values_list("practice_id", flat=True):
        report = audit_chain_verify(practice_id=pid)
        if report.ok:
            continue
        first = report.first_break
        raised.append(
            alert_raise(
                practice=Practice.objects.get(pk=pid),
                kind=Alert.Kind.AUDIT_CHAIN,
                dedup_key="chain",
                reason=f"The audit chain does not verify: event {first.seq}: {first.reason}. "
                "Run `manage.py audit_verify` and compare with the anchored checkpoints.",
            )
        )
    return raised
