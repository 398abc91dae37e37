"""Issue 13, point 6: clinician names in HL7. TXA-5 (primary activity
provider), TXA-9 (originator) and TXA-22 (authenticator) are XCN/PPN built
from the member's stored name parts (User.last_name, User.first_name,
Membership.credentials) and, in XCN-1, the practitioner's EHR id where
known; never parsed from a display name. Golden strings, parsed back with
hl7apy."""

import hl7
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from integrations.builders.hl7 import mdm_build
from integrations.mapping import mapping_default_document
from integrations.models import Delivery, EHRConnection
from integrations.services import connection_create, delivery_send
from notes.models import Membership
from tests.factories import client_factory, member_factory, note_factory, note_sign_now
from tests.integrations.support import MLLPReceiver
from tests.integrations.test_fhir_builder import SECTIONS, SIGNED, note_input


def build(**overrides) -> str:
    return mdm_build(
        note_input(**overrides), mapping_default_document(SECTIONS), control_id="PSYFI000000000007", now=SIGNED
    )


def txa(text: str) -> list[str]:
    return next(s for s in text.split("\r") if s.startswith("TXA")).split("|")


RIVERA = dict(
    clinician_name="Sam Rivera, PsyD",
    clinician_family_name="Rivera",
    clinician_given_name="Sam",
    clinician_credentials="PsyD",
    clinician_ehr_id="PR-1001",
)


def test_txa_5_9_and_22_are_id_family_given_and_degree():
    text = build(**RIVERA)
    fields = txa(text)
    assert fields[5] == "PR-1001^Rivera^Sam^^^^PsyD"
    assert fields[9] == "PR-1001^Rivera^Sam^^^^PsyD"
    assert fields[22] == "PR-1001^Rivera^Sam^^^^PsyD^^^^^^^^20261124160200"
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    for provider in (message.txa.txa_5, message.txa.txa_9):
        assert provider.xcn_1.to_er7() == "PR-1001"
        assert provider.xcn_2.to_er7() == "Rivera"
        assert provider.xcn_3.to_er7() == "Sam"
        assert provider.xcn_7.to_er7() == "PsyD"
    authenticator = message.txa.txa_22
    assert (authenticator.ppn_2.to_er7(), authenticator.ppn_3.to_er7()) == ("Rivera", "Sam")
    assert authenticator.ppn_7.to_er7() == "PsyD"
    assert authenticator.ppn_15.to_er7() == "20261124160200"


def test_a_name_of_several_words_is_taken_as_stored_not_split():
    text = build(
        clinician_name="Mary Ann de la Cruz Jr, LCSW",
        clinician_family_name="de la Cruz",
        clinician_given_name="Mary Ann",
        clinician_credentials="LCSW",
        clinician_ehr_id="",
    )
    assert txa(text)[5] == "^de la Cruz^Mary Ann^^^^LCSW"
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert message.txa.txa_5.xcn_2.to_er7() == "de la Cruz"


def test_without_an_ehr_id_xcn_1_is_empty_not_a_placeholder():
    fields = txa(build(**{**RIVERA, "clinician_ehr_id": ""}))
    assert fields[5] == "^Rivera^Sam^^^^PsyD"
    assert "UNKNOWN" not in "|".join(fields)


def test_without_credentials_the_degree_is_left_out():
    assert txa(build(**{**RIVERA, "clinician_credentials": ""}))[9] == "PR-1001^Rivera^Sam"


def test_credentials_too_long_for_the_degree_give_the_first_one_listed():
    text = build(**{**RIVERA, "clinician_credentials": "PsyD, LCSW, LMFT, CADC-II"})
    assert txa(text)[5] == "PR-1001^Rivera^Sam^^^^PsyD"
    parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert txa(build(**{**RIVERA, "clinician_credentials": "X" * 40}))[5] == "PR-1001^Rivera^Sam"


def test_hl7_delimiters_in_a_name_are_escaped_and_read_back():
    text = build(**{**RIVERA, "clinician_family_name": "O^Brien|Smith&Co", "clinician_given_name": "Jo~Jo\\"})
    assert txa(text)[5] == "PR-1001^O\\S\\Brien\\F\\Smith\\T\\Co^Jo\\R\\Jo\\E\\^^^^PsyD"
    parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    parsed = hl7.parse(text)
    provider = parsed.segment("TXA")[5][0]
    assert parsed.unescape(str(provider[1])) == "O^Brien|Smith&Co"
    assert parsed.unescape(str(provider[2])) == "Jo~Jo\\"


# ---------------------------------------------------------------- from the member, end to end


@pytest.fixture
def receiver():
    r = MLLPReceiver("AA").start()
    yield r
    r.stop()


def deliver_signed_by(world, receiver, clinician) -> str:
    connection_create(
        practice=world.practice, name="HL7", kind=EHRConnection.Kind.HL7, base_url=receiver.url, is_sandbox=True
    )
    client = client_factory(world.practice, clinician)
    note = note_sign_now(note_factory(practice=world.practice, clinician=clinician, client=client), clinician)
    receiver.add_patient(note.client)
    delivery = Delivery.objects.get(note=note)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.DELIVERED, delivery.last_error
    return receiver.filed[0]


@pytest.mark.django_db
def test_the_delivered_mdm_names_the_signer_from_user_and_membership(world, receiver):
    membership = member_factory(world.practice, first_name="Sam", last_name="Rivera", credentials="PsyD")
    Membership.objects.filter(pk=membership.pk).update(ehr_practitioner_id="PR-1001")
    fields = txa(deliver_signed_by(world, receiver, membership.user))
    assert fields[5] == fields[9] == "PR-1001^Rivera^Sam^^^^PsyD"
    assert fields[22].startswith("PR-1001^Rivera^Sam^^^^PsyD^^^^^^^^")


@pytest.mark.django_db
def test_a_signer_with_no_name_is_named_by_username_only(world, receiver):
    membership = member_factory(world.practice, first_name="", last_name="", username="srivera")
    fields = txa(deliver_signed_by(world, receiver, membership.user))
    assert fields[5] == "^srivera"
