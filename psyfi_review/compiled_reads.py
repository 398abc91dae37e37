"""Hot-path reads compiled once per database connection, not once per call.

Django compiles a queryset to SQL every time it is evaluated. For the
delivery worker's reads (a note with its client, draft, signer and template
in one seven-table join; the claimed row with its connection) that costs
more CPU than the rest of the attempt's Python, and a threads-pool worker
pays it under one GIL shared by every delivery in flight. A CompiledRead
compiles its queryset once per connection, with placeholder values standing
in for its parameters, then runs the same SQL with the real values and
builds the same model instances the queryset would (select_related and
deferred fields included), through Django's own row converters and
populators.

On PostgreSQL the statement is also prepared (psycopg's `prepare=True` on a
server-binding cursor): after its first few runs on a connection
(PostgreSQL plans five for their values, then keeps one generic plan), the
server stops planning it. The note join took longer to plan than to run.
Django leaves prepared statements off by default for transaction-pooling
proxies; a PgBouncer in front of PostgreSQL needs 1.21 or newer with
max_prepared_statements set, or DATABASE_PREPARED_STATEMENTS=false
(docs/delivery.md, "Settings").

Only for reads whose shape never changes (a lookup by key). Everything else
stays plain ORM."""

from collections.abc import Callable
from typing import NamedTuple

from django.db import connections
from django.db.backends.postgresql.base import ServerBindingCursor
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators
from django.db.models.sql.compiler import SQLCompiler

# Stand-ins for a read's parameters while it is compiled; each must come out
# of the compiler as one parameter of its own, so it can be replaced.
_PLACEHOLDER_BASE = -7_340_032_000_000_000


class _Compiled(NamedTuple):
    """One read compiled on one connection."""

    model: type[Model]
    db: str
    sql: str
    slots: tuple[int, ...]  # where each argument goes among the parameters
    params: tuple  # the parameters, placeholders still in their slots
    compiler: SQLCompiler
    converters: dict
    populate: Callable[[list], Model]


class CompiledRead:
    """`build(*args)` returns the queryset for one set of arguments (integers:
    primary or foreign keys). `get(*args)` returns its one model instance or
    raises the model's DoesNotExist, like QuerySet.get; `all(*args)` returns
    the list the queryset would."""

    def __init__(self, build: Callable[..., QuerySet], *, arity: int = 1):
        self.build = build
        self.arity = arity
        self._key = object()
        self._db: str | None = None  # the alias the queryset reads from, known after its first build

    def get(self, *args: int) -> Model:
        compiled = self._compiled()
        rows = self._run(compiled, args)
        if len(rows) != 1:
            name = compiled.model.__name__
            if not rows:
                raise compiled.model.DoesNotExist(f"{name} matching {args} does not exist.")
            raise compiled.model.MultipleObjectsReturned(f"{len(rows)} {name} rows match {args}.")
        return rows[0]

    def all(self, *args: int) -> list[Model]:
        """Every instance the queryset would give, in its order."""
        return self._run(self._compiled(), args)

    def _run(self, compiled: _Compiled, args: tuple) -> list[Model]:
        if len(args) != self.arity:
            raise TypeError(f"expected {self.arity} argument(s), got {len(args)}")
        params = list(compiled.params)
        for position, arg in zip(compiled.slots, args, strict=True):
            params[position] = arg
        with prepared_cursor(connections[compiled.db]) as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        if rows and compiled.converters:
            rows = compiled.compiler.apply_converters(rows, compiled.converters)
        return [compiled.populate(row) for row in rows]

    def _compiled(self) -> _Compiled:
        # Per connection: converters are bound to the connection that compiled
        # them, and each worker thread has its own.
        if self._db is not None:
            hit = connections[self._db].__dict__.get("_psyfi_compiled_reads", {}).get(self._key)
            if hit is not None:
                return hit
        placeholders = [_PLACEHOLDER_BASE - n for n in range(self.arity)]
        queryset = self.build(*placeholders)
        self._db = queryset.db
        hit = self._compile(queryset, placeholders)
        connections[self._db].__dict__.setdefault("_psyfi_compiled_reads", {})[self._key] = hit
        return hit

    @staticmethod
    def _compile(queryset: QuerySet, placeholders: list[int]) -> _Compiled:
        db = queryset.db
        compiler = queryset.query.get_compiler(using=db)
        sql, params = compiler.as_sql()  # also fills compiler.select and klass_info
        params = list(params)
        slots = []
        for placeholder in placeholders:
            found = [i for i, p in enumerate(params) if p == placeholder]
            if len(found) != 1:
                raise ValueError("each argument must appear exactly once among the compiled query's parameters")
            slots.append(found[0])
        select, klass_info = compiler.select, compiler.klass_info
        if compiler.annotation_col_map or queryset._known_related_objects or queryset._prefetch_related_lookups:
            raise ValueError("annotations, known related objects and prefetches are not supported")
        model = klass_info["model"]
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        init_list = [f[0].target.attname for f in select[start:end]]
        populators = get_related_populators(klass_info, select, db)
        # What results_iter works out on every call.
        fields = [s[0] for s in select[0 : compiler.col_count]]
        if compiler.has_composite_fields(fields):
            raise ValueError("composite primary keys are not supported")
        converters = compiler.get_converters(fields)

        def populate(row) -> Model:
            # What ModelIterable does for each row.
            obj = model.from_db(db, init_list, row[start:end])
            for populator in populators:
                populator.populate(row, obj)
            return obj

        return _Compiled(model, db, sql, tuple(slots), tuple(params), compiler, converters, populate)


class _PreparedCursor(ServerBindingCursor):
    """psycopg's server-binding cursor with every execute prepared."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True if prepare is None else prepare, binary=binary)


def prepared_cursor(connection):
    """A Django cursor (query logging, execute wrappers, error translation,
    the broken-transaction check all apply); on PostgreSQL over a preparing
    server-binding cursor. Also for hand-written hot-path statements
    (integrations.services.outbox_statements)."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    # What Django's own connection.cursor() does before handing one out.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = _PreparedCursor(connection.connection)
    wrapper = _DebugWrapper if connection.queries_logged else CursorWrapper
    return wrapper(raw, connection)


class _DebugWrapper(CursorDebugWrapper):
    """Logs the statement with its values (DEBUG, CaptureQueriesContext):
    Django reads them from a client-side cursor's last query, and this one
    binds on the server."""

    def execute(self, sql, params=None):
        with self.debug_sql(self.db.ops.compose_sql(sql, params)):
            return CursorWrapper.execute(self, sql, params)
