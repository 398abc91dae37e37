"""The built-in sandbox keeps each practice's data apart: SandboxResource gets
a practice. Existing rows go to the practice they can be traced to (a
Patient to the practice of the synthetic client with that id, a
DocumentReference to the practice of the delivery that wrote it, a
Provenance to its DocumentReference's practice); synthetic rows that no
single practice can be shown to own are deleted rather than guessed."""

import django.db.models.deletion
from django.db import migrations, models


def assign_practices(apps, schema_editor):
    SandboxResource = apps.get_model("integrations", "SandboxResource")
    Delivery = apps.get_model("integrations", "Delivery")
    Client = apps.get_model("notes", "Client")

    def single(values) -> int | None:
        found = set(values)
        return found.pop() if len(found) == 1 else None

    owners: dict[tuple[str, str], int] = {}
    for resource_type in ("Patient", "DocumentReference", "Provenance"):
        for row in SandboxResource.objects.filter(resource_type=resource_type).iterator():
            if resource_type == "Patient":
                practice_id = single(
                    Client.objects.filter(ehr_patient_id=row.logical_id, synthetic=True).values_list(
                        "practice_id", flat=True
                    )
                )
            elif resource_type == "DocumentReference":
                practice_id = single(
                    Delivery.objects.filter(ehr_id=row.logical_id).values_list("practice_id", flat=True)
                )
            else:
                targets = [t.get("reference", "") for t in row.body.get("target") or [] if isinstance(t, dict)]
                practice_id = single(
                    owners[("DocumentReference", ref.split("/", 1)[1])]
                    for ref in targets
                    if ref.startswith("DocumentReference/") and ("DocumentReference", ref.split("/", 1)[1]) in owners
                )
            if practice_id is None:
                row.delete()
                continue
            owners[(resource_type, row.logical_id)] = practice_id
            SandboxResource.objects.filter(pk=row.pk).update(practice_id=practice_id)
    if schema_editor.connection.vendor == "postgresql":
        # The new foreign key's deferred checks would otherwise block the
        # ALTER TABLE that makes the column NOT NULL in this transaction.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0003_connection_patient_query_url"),
        ("notes", "0003_historical_draft_without_payload"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="sandboxresource", name="sandbox_unique_id"),
        migrations.RemoveIndex(model_name="sandboxresource", name="sandbox_ident_idx"),
        migrations.AddField(
            model_name="sandboxresource",
            name="practice",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="notes.practice"
            ),
        ),
        migrations.RunPython(assign_practices, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="sandboxresource",
            name="practice",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="notes.practice"),
        ),
        migrations.AddIndex(
            model_name="sandboxresource",
            index=models.Index(
                fields=["practice", "resource_type", "identifier_system", "identifier_value"],
                name="sandbox_practice_ident_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="sandboxresource",
            constraint=models.UniqueConstraint(
                fields=("practice", "resource_type", "logical_id"), name="sandbox_practice_unique_id"
            ),
        ),
    ]
