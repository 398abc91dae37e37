from django.db import migrations, models

PATIENT_CHECK = models.CharField(
    choices=[
        ("pdq", "Ask the EHR first (IHE PDQ query before each note)"),
        ("receiver", "The receiver checks (patient id, name and date of birth in the note)"),
    ],
    default="pdq",
    max_length=10,
)


class Migration(migrations.Migration):
    # Existing HL7 connections keep today's behaviour: the PDQ query.
    dependencies = [
        ("integrations", "0005_delivery_waits_for_replaced_version"),
    ]

    operations = [
        migrations.AddField(model_name="ehrconnection", name="hl7_patient_check", field=PATIENT_CHECK),
        migrations.AddField(model_name="historicalehrconnection", name="hl7_patient_check", field=PATIENT_CHECK),
        migrations.AddField(
            model_name="ehrconnection",
            name="hl7_assigning_authority",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AddField(
            model_name="historicalehrconnection",
            name="hl7_assigning_authority",
            field=models.CharField(blank=True, max_length=100),
        ),
    ]
