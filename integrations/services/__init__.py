"""Delivery rules, in modules along their concerns: invariants (what may be
delivered, and where), connections, mappings, perform (one attempt over the
connection's protocol, a perform function per connection kind) and delivery
(the outbox: claim, ledger, record, sweep). `from integrations.services
import X` keeps working for every name other code imports."""

from integrations.services.alerts import alert_acknowledge, alert_raise, alert_resolve, alert_rules_save
from integrations.services.connections import (
    connection_create,
    connection_record_metadata,
    connection_revoke,
    connection_test,
    credentials_reencrypt,
)
from integrations.services.delivery import (
    SendResult,
    delivery_backoff,
    delivery_create_for_note,
    delivery_release_waiting,
    delivery_reprocess,
    delivery_send,
    delivery_sweep,
    delivery_waiting_reason,
)
from integrations.services.invariants import delivery_check_deliverable, delivery_check_target
from integrations.services.mappings import mapping_export, mapping_import, mapping_save
from integrations.services.perform import PERFORMERS, delivery_mapping_document, note_input

__all__ = [
    "PERFORMERS",
    "SendResult",
    "alert_acknowledge",
    "alert_raise",
    "alert_resolve",
    "alert_rules_save",
    "connection_create",
    "connection_record_metadata",
    "connection_revoke",
    "connection_test",
    "credentials_reencrypt",
    "delivery_backoff",
    "delivery_check_deliverable",
    "delivery_check_target",
    "delivery_create_for_note",
    "delivery_mapping_document",
    "delivery_release_waiting",
    "delivery_reprocess",
    "delivery_send",
    "delivery_sweep",
    "delivery_waiting_reason",
    "mapping_export",
    "mapping_import",
    "mapping_save",
    "note_input",
]
