from django.core.management import call_command

from integrations.models import EHRConnection, SandboxResource
from tests.factories import client_factory


def test_demo_setup_points_the_practice_at_the_sandbox_and_is_idempotent(world):
    client = client_factory(world.practice, world.clinician, synthetic=True)
    real = client_factory(world.practice, world.clinician, synthetic=False)
    for _ in range(2):
        call_command("integrations_demo_setup", practice=world.practice.slug)
    connection = EHRConnection.objects.get(practice=world.practice, is_active=True)
    assert connection.kind == EHRConnection.Kind.SANDBOX and connection.is_sandbox
    assert EHRConnection.objects.filter(practice=world.practice).count() == 1
    patients = SandboxResource.objects.filter(resource_type="Patient")
    assert set(patients.values_list("logical_id", flat=True)) == {client.ehr_patient_id}
    assert real.ehr_patient_id not in set(patients.values_list("logical_id", flat=True))
