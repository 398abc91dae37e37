"""Signed checkpoints of each practice's audit chain (audit.anchoring). Like
the events, on PostgreSQL a trigger refuses UPDATE and DELETE of them."""

import django.db.models.deletion
from django.db import migrations, models

CREATE = """
CREATE OR REPLACE FUNCTION audit_auditcheckpoint_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_auditcheckpoint is append-only (%% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_auditcheckpoint_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION audit_auditcheckpoint_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_auditcheckpoint_no_update_delete ON audit_auditcheckpoint;
DROP FUNCTION IF EXISTS audit_auditcheckpoint_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_note_attribution"),
        ("notes", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.PositiveBigIntegerField()),
                ("hash", models.CharField(max_length=64)),
                ("signed_at", models.DateTimeField()),
                (
                    "key_id",
                    models.CharField(help_text="First 16 hex digits of SHA-256 of the raw public key", max_length=16),
                ),
                ("signature", models.CharField(help_text="Ed25519 signature, base64", max_length=88)),
                (
                    "practice",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="+", to="notes.practice"
                    ),
                ),
            ],
            options={
                "ordering": ["practice_id", "seq"],
                "constraints": [
                    models.UniqueConstraint(fields=("practice", "seq"), name="audit_unique_checkpoint_per_seq")
                ],
            },
        ),
        migrations.RunPython(forwards, backwards),
    ]
