"""Creating clinical rows together with their django-simple-history
"created" rows.

The library writes a new row's history with a second INSERT through the ORM
(post_save, or bulk_history_create after bulk_create). On the intake path
that was six ORM inserts per draft (draft, note, sections, each twice) and
the largest share of a draft's cost. On PostgreSQL, create_with_history
writes the rows and their history rows in one statement; elsewhere it uses
the library's own bulk_create_with_history. The history rows hold what the
library's would: every tracked field, history_type "+", the same history
user (the library's own getter) and the time of the write.
"""

from django.db import connections
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, get_history_model_for_model


def _sql(model, history_model, fields, rows: int) -> str:
    table = model._meta.db_table
    columns = ", ".join(f'"{f.column}"' for f in fields)
    values = ", ".join(["(" + ", ".join(["%s"] * len(fields)) + ")"] * rows)
    tracked = ", ".join(f'"{f.column}"' for f in history_model.tracked_fields)
    return (
        f'WITH ins AS (INSERT INTO "{table}" ({columns}) VALUES {values} RETURNING *), '  # noqa: S608 - names from models
        f'hist AS (INSERT INTO "{history_model._meta.db_table}" ({tracked}, "history_date", '
        f'"history_change_reason", "history_type", "history_user_id") '
        f"SELECT {tracked}, %s, NULL, '+', %s FROM ins) "
        f'SELECT "{model._meta.pk.column}" FROM ins ORDER BY "{model._meta.pk.column}"'
    )


def _sql_columns(model, history_model, fields, connection) -> str:
    """The same statement for many rows: one array parameter per column,
    unnested into rows. A VALUES list of n rows has n x columns placeholders,
    which PostgreSQL parses and plans anew for every n (a group session's
    1,500 flags took a third of its time there)."""
    table = model._meta.db_table
    columns = ", ".join(f'"{f.column}"' for f in fields)
    arrays = ", ".join(f"%s::{f.cast_db_type(connection)}[]" for f in fields)
    tracked = ", ".join(f'"{f.column}"' for f in history_model.tracked_fields)
    return (
        f'WITH ins AS (INSERT INTO "{table}" ({columns}) '  # noqa: S608 - names from models
        f"SELECT * FROM unnest({arrays}) RETURNING *), "
        f'hist AS (INSERT INTO "{history_model._meta.db_table}" ({tracked}, "history_date", '
        f'"history_change_reason", "history_type", "history_user_id") '
        f"SELECT {tracked}, %s, NULL, '+', %s FROM ins) "
        f'SELECT "{model._meta.pk.column}" FROM ins ORDER BY "{model._meta.pk.column}"'
    )


# From this many rows on, one array per column (_sql_columns) beats a VALUES list.
COLUMN_ARRAYS_FROM = 20


def create_with_history(model, objs: list) -> list:
    """Insert objs (unsaved instances of model, which has an automatic primary
    key and HistoricalRecords) and one "created" history row for each. Returns
    objs, saved, with their primary keys. Call inside a transaction."""
    if not objs:
        return objs
    connection = connections["default"]
    if connection.vendor != "postgresql":
        return bulk_create_with_history(objs, model)
    history_model = get_history_model_for_model(model)
    # What this writer does not do; the library's own path does.
    if model._meta.parents or model._meta.many_to_many or hasattr(history_model, "history_relation"):
        raise TypeError(f"create_with_history does not handle {model.__name__}'s shape; use the library.")
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    if any(f.has_db_default() for f in fields) or any(obj.pk is not None for obj in objs):
        raise ValueError("create_with_history takes new rows with no database defaults.")
    rows = [[field.get_db_prep_save(field.pre_save(obj, add=True), connection) for field in fields] for obj in objs]
    user = history_model.get_default_history_user(objs[0])
    tail = [timezone.now(), user.pk if user is not None else None]
    if len(rows) >= COLUMN_ARRAYS_FROM:
        sql = _sql_columns(model, history_model, fields, connection)
        params = [list(column) for column in zip(*rows, strict=True)] + tail
    else:
        sql = _sql(model, history_model, fields, len(rows))
        params = [value for row in rows for value in row] + tail
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        pks = [row[0] for row in cursor.fetchall()]
    for obj, pk in zip(objs, pks, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias
    return objs
