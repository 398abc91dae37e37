"""Import clients from a CSV file exported by the EHR: check every row first
(the preview), then create all of them in one transaction, or none.

The header names the columns; several EHRs' spellings are accepted
(COLUMN_ALIASES). Required: given name, family name, date of birth; the
clinician column (username or email) may be left out when the admin picks a
default clinician for the whole file.
"""

import csv
from dataclasses import dataclass, field
from datetime import date, datetime

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import actor_person, audit_record
from notes import services as notes_services
from notes.errors import DomainError
from notes.models import Client, Membership
from practice_admin.access import admin_membership
from practice_admin.services.csv_rows import numbered_rows

MAX_BYTES = 2 * 1024 * 1024
MAX_ROWS = 5000
COLUMN_ALIASES = {
    "given_name": ("given_name", "first_name", "firstname", "given", "first"),
    "family_name": ("family_name", "last_name", "lastname", "surname", "family", "last"),
    "date_of_birth": ("date_of_birth", "dob", "birth_date", "birthdate"),
    "ehr_patient_id": ("ehr_patient_id", "patient_id", "mrn", "chart_number", "id"),
    "clinician": ("clinician", "provider", "clinician_username", "clinician_email"),
    "synthetic": ("synthetic",),
}
REQUIRED = ("given_name", "family_name", "date_of_birth")
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y")
TRUE_WORDS = {"yes", "y", "true", "1"}
FALSE_WORDS = {"no", "n", "false", "0", ""}


class ImportRejected(DomainError):
    """The file has errors; nothing was imported. Carries the preview."""

    def __init__(self, message: str, *, preview: "ClientImportPreview"):
        super().__init__(message, field="file")
        self.preview = preview


@dataclass
class ImportRow:
    line: int  # the line of the file, header = 1, as a spreadsheet shows it
    values: dict
    errors: list[str] = field(default_factory=list)


@dataclass
class ClientImportPreview:
    rows: list[ImportRow] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)

    @property
    def error_rows(self) -> list[ImportRow]:
        return [row for row in self.rows if row.errors]

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not self.file_errors and not self.error_rows


def _norm_header(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").split())


def _columns(header: list[str]) -> tuple[dict[str, int], list[str]]:
    found, errors = {}, []
    normalised = [_norm_header(h) for h in header]
    for column, aliases in COLUMN_ALIASES.items():
        for i, name in enumerate(normalised):
            if name in aliases:
                found.setdefault(column, i)
    for column in REQUIRED:
        if column not in found:
            errors.append(f"The header has no {column.replace('_', ' ')} column (e.g. “{column}”).")
    return found, errors


def _parse_date(raw: str) -> date | None:
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(raw, fmt).date()  # noqa: DTZ007 (a date, no time zone)
        except ValueError:
            continue
    return None


def _clinicians(practice_id: int) -> dict[str, object]:
    """Active clinicians of the practice by lower-cased username and email."""
    users = get_user_model().objects.filter(
        Q(membership__practice_id=practice_id)
        & Q(membership__role=Membership.Role.CLINICIAN)
        & Q(membership__is_active=True)
        & Q(is_active=True)
    )
    found = {}
    for user in users:
        found[user.username.lower()] = user
        if user.email:
            found.setdefault(user.email.lower(), user)
    return found


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DomainError("The file is not UTF-8 text; export it from the EHR as CSV (UTF-8).", field="file") from None


def client_import_preview(*, actor, data: bytes | str, default_clinician=None) -> ClientImportPreview:
    """Check every row without writing anything. Each row gets its own
    errors; file-level problems (no header, too many rows) go to file_errors."""
    membership = admin_membership(actor)
    preview = ClientImportPreview()
    if len(data) > MAX_BYTES:
        preview.file_errors.append(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB; split it.")
        return preview
    text = _decode(data)
    try:
        numbered = numbered_rows(text)
    except csv.Error as exc:
        preview.file_errors.append(f"The file is not valid CSV: {exc}.")
        return preview
    table = [cells for _, cells in numbered]
    if not table:
        preview.file_errors.append("The file is empty.")
        return preview
    columns, errors = _columns(table[0])
    preview.file_errors.extend(errors)
    if errors:
        return preview
    if len(table) - 1 > MAX_ROWS:
        preview.file_errors.append(f"The file has {len(table) - 1} rows; import at most {MAX_ROWS} at a time.")
        return preview
    if len(table) == 1:
        preview.file_errors.append("The file has a header but no clients.")
        return preview
    if default_clinician is not None and default_clinician.membership.practice_id != membership.practice_id:
        preview.file_errors.append("The default clinician is not a clinician of this practice.")
        return preview

    clinicians = _clinicians(membership.practice_id)
    existing_ids = set(
        Client.objects.filter(practice_id=membership.practice_id)
        .exclude(ehr_patient_id="")
        .values_list("ehr_patient_id", flat=True)
    )
    seen_ids: dict[str, int] = {}
    today = timezone.localdate()
    max_len = {f: Client._meta.get_field(f).max_length for f in ("given_name", "family_name", "ehr_patient_id")}
    for line, cells in numbered[1:]:
        raw = {name: (cells[i].strip() if i < len(cells) else "") for name, i in columns.items()}
        row = ImportRow(line=line, values=dict(raw))
        for name in REQUIRED:
            if not raw.get(name):
                row.errors.append(f"{name.replace('_', ' ').capitalize()} is missing.")
        for name, limit in max_len.items():
            if len(raw.get(name, "")) > limit:
                row.errors.append(f"{name.replace('_', ' ').capitalize()} is longer than {limit} characters.")
        if raw.get("date_of_birth"):
            born = _parse_date(raw["date_of_birth"])
            if born is None:
                row.errors.append(f"Date of birth “{raw['date_of_birth']}” is not a date (YYYY-MM-DD or MM/DD/YYYY).")
            elif born > today:
                row.errors.append("Date of birth is in the future.")
            else:
                row.values["date_of_birth"] = born
        ehr_id = raw.get("ehr_patient_id", "")
        if ehr_id:
            if ehr_id in existing_ids:
                row.errors.append(f"EHR patient id “{ehr_id}” belongs to a client already in the practice.")
            elif ehr_id in seen_ids:
                row.errors.append(f"EHR patient id “{ehr_id}” is also on line {seen_ids[ehr_id]}.")
            else:
                seen_ids[ehr_id] = line
        who = raw.get("clinician", "")
        if who:
            clinician = clinicians.get(who.lower())
            if clinician is None:
                row.errors.append(f"“{who}” is not an active clinician of this practice (username or email).")
            row.values["clinician"] = clinician
        elif default_clinician is not None:
            row.values["clinician"] = default_clinician
        else:
            row.errors.append("No clinician: fill the clinician column or choose a default clinician.")
        synthetic = raw.get("synthetic", "").lower()
        if synthetic in TRUE_WORDS:
            row.values["synthetic"] = True
        elif synthetic in FALSE_WORDS:
            row.values["synthetic"] = False
        else:
            row.errors.append(f"Synthetic “{raw['synthetic']}” is not yes or no.")
        preview.rows.append(row)
    return preview


@transaction.atomic
def client_import(*, actor, data: bytes | str, default_clinician=None) -> list[Client]:
    """Create every client of the file, or none: any row with an error, or a
    clash with a client added meanwhile, rejects the whole file
    (ImportRejected carries the preview with the errors)."""
    membership = admin_membership(actor)
    preview = client_import_preview(actor=actor, data=data, default_clinician=default_clinician)
    if not preview.ok:
        raise ImportRejected(
            "Nothing was imported: correct the rows with errors and upload the file again.", preview=preview
        )
    created = []
    try:
        with transaction.atomic():
            for row in preview.rows:
                v = row.values
                created.append(
                    notes_services.client_create(
                        practice=membership.practice,
                        clinician=v["clinician"],
                        given_name=v["given_name"],
                        family_name=v["family_name"],
                        date_of_birth=v["date_of_birth"],
                        ehr_patient_id=v.get("ehr_patient_id", ""),
                        synthetic=v["synthetic"],
                        actor=actor,
                    )
                )
    except IntegrityError:  # a client with one of these ids was added while we imported
        preview.file_errors.append("A client with one of these EHR patient ids was added meanwhile.")
        raise ImportRejected(
            "Nothing was imported: the practice's clients changed meanwhile.", preview=preview
        ) from None
    audit_record(
        practice=membership.practice,
        actor=actor_person(actor),
        action="client.import",
        detail={"created": len(created), "client_ids": [c.pk for c in created]},
    )
    return created
