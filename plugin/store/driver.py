"""Hot statements run on the driver's cursor, compiled once per dialect by SQLAlchemy Core.

A statement executed through SQLAlchemy's Connection pays for a compile-cache
lookup, an execution context, result metadata and type processing on every call:
about 0.14 ms of CPU on PostgreSQL, more than the driver and the database spend on
a primary-key read. The few statements every request runs (reading an incident,
the writes of a create or a change) are written once with Core, compiled here once
per dialect, and run on the DBAPI cursor of the unit of work's connection, inside
its transaction. What SQLAlchemy's types would do is done here for the types these
statements use: JSON is encoded on the way in and decoded on the way out, SQLite's
0/1 become booleans. Errors are raised as SQLAlchemy's, as if it had run them.
Parameters are positional on both databases (PostgreSQL's ``%(name)s`` become
``%s``), so that writes can be joined into one statement (:class:`Write`).
"""
from __future__ import annotations

import json
import re
from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

_CURSOR = "incident_driver_cursor"


def _decoder(column_type: sa.types.TypeEngine) -> Callable[[Any], Any] | None:
    if isinstance(column_type, sa.JSON):
        return lambda value: json.loads(value) if isinstance(value, (str, bytes)) else value
    if isinstance(column_type, sa.Boolean):
        return lambda value: value if value is None else bool(value)
    return None


_NAMED = re.compile(r"%%|%\((\w+)\)s")


def _positional(sql: str) -> tuple[str, list[str]]:
    """pyformat SQL (``%(name)s``) as format SQL (``%s``) and the names in the order they come."""
    order: list[str] = []

    def swap(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return "%%"  # a literal percent sign stays escaped
        order.append(match.group(1))
        return "%s"

    return _NAMED.sub(swap, sql), order


class Statement:
    """A Core statement compiled once per dialect; executed with :func:`execute`."""

    def __init__(self, statement: Any, keys: Sequence[str] | None = None):
        self.statement = statement
        self.keys = list(keys) if keys is not None else None
        self._compiled: dict[str, tuple[str, list[str] | None, set[str]]] = {}
        # Values SQLAlchemy compiled in as parameters of their own (SQLite's OFFSET 0 after a
        # bound LIMIT, say), added to every call's values.
        self._fixed: dict[str, dict[str, Any]] = {}
        columns = list(getattr(statement, "selected_columns", None) or [])
        self.row = namedtuple("Row", [column.key for column in columns]) if columns else None  # type: ignore[misc]
        self._decoders = [(index, decode) for index, column in enumerate(columns)
                          if (decode := _decoder(column.type)) is not None]
        self._guarded: dict[str, Statement] = {}

    def prepared(self, dialect: sa.Dialect) -> tuple[str, list[str], set[str]]:
        """The SQL text with positional parameters, their names in order and the JSON parameters."""
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self.keys)
            if compiled.positional:
                text, order = compiled.string, list(compiled.positiontup)
            else:
                text, order = _positional(compiled.string)
            encoded = {name for name, bind in compiled.binds.items() if isinstance(bind.type, sa.JSON)}
            self._fixed[dialect.name] = {name: bind.value for name, bind in compiled.binds.items()
                                         if not bind.required and bind.value is not None}
            found = self._compiled[dialect.name] = (text, order, encoded)
        return found

    def parameters(self, dialect: sa.Dialect, values: dict[str, Any]) -> tuple[Any, ...]:
        """values as the driver takes them for this dialect: a tuple in the statement's order."""
        _sql, order, encoded = self.prepared(dialect)
        fixed = self._fixed[dialect.name]
        if fixed:
            values = {**fixed, **values}
        if encoded:
            values = {key: json.dumps(value) if key in encoded else value for key, value in values.items()}
        return tuple(values[name] for name in order)

    def write(self, dialect: sa.Dialect, values: dict[str, Any],
              retry: Callable[[sa.exc.IntegrityError], Write | None] | None = None) -> Write:
        """This statement with values as a :class:`Write` (for a unit of work's commit).

        On PostgreSQL the insert of one row of named columns also comes with its
        guarded form (see :meth:`guarded`), built only when asked for.
        """
        guarded = None
        if (dialect.name == "postgresql" and self.keys is not None and isinstance(self.statement, sa.Insert)
                and retry is None):
            def guarded(guard: str) -> Write:
                return self.guarded(guard).write(dialect, values)
        return Write(self.prepared(dialect)[0], self.parameters(dialect, values), retry=retry, guarded=guarded)

    def guarded(self, guard: str) -> Statement:
        """This insert of one row, made only when the statement named guard (a WITH of the
        same statement) returned a row: ``INSERT ... SELECT <values> WHERE EXISTS (SELECT 1 FROM guard)``.

        Each value is cast to its column's type, as a VALUES list would have it (a bare
        parameter in a SELECT list would be taken as text).
        """
        found = self._guarded.get(guard)
        if found is None:
            assert self.keys is not None and isinstance(self.statement, sa.Insert)
            table = self.statement.table
            select = sa.select(*[sa.cast(sa.bindparam(key), table.c[key].type) for key in self.keys]).where(
                sa.exists(sa.select(sa.literal_column("1")).select_from(sa.table(guard))))
            found = self._guarded[guard] = Statement(sa.insert(table).from_select(self.keys, select))
        return found

    def rows(self, raw: list[tuple[Any, ...]]) -> list[Any]:
        """Result tuples as named rows, with JSON decoded and booleans as bool."""
        assert self.row is not None
        out = []
        for values in raw:
            if self._decoders:
                values = list(values)
                for index, decode in self._decoders:
                    values[index] = decode(values[index])
            out.append(self.row(*values))
        return out


def cursor(connection: sa.Connection) -> Any:
    """The DBAPI cursor kept with this pooled DBAPI connection (made at its first use)."""
    info = connection.connection.info  # cleared when the DBAPI connection is replaced
    found = info.get(_CURSOR)
    if found is None:
        found = info[_CURSOR] = connection.connection.dbapi_connection.cursor()
    return found


def execute(connection: sa.Connection, statement: Statement, values: dict[str, Any] | Sequence[dict[str, Any]],
            *, many: bool = False, begin: bool = False) -> Any:
    """Run statement on connection's DBAPI cursor (executemany when many); return the cursor.

    With begin, the connection's transaction begins first if it has not yet (on
    SQLite that is where a writer takes its turn for the write lock): SQLAlchemy
    does not see statements run on the cursor, so it would not begin for them.
    Reads of a reading unit of work run in autocommit, like every read here.
    """
    if begin and not connection.in_transaction():
        connection.begin()
    dialect = connection.dialect
    sql, _order, _encoded = statement.prepared(dialect)
    if many:
        return execute_sql(connection, sql, [statement.parameters(dialect, row) for row in values], many=True)
    return execute_sql(connection, sql, statement.parameters(dialect, values))  # type: ignore[arg-type]


def execute_sql(connection: sa.Connection, sql: str, parameters: Any = None, *, many: bool = False) -> Any:
    """Run SQL text written for this dialect's driver on the connection's DBAPI cursor; return the cursor.

    Driver errors are raised as SQLAlchemy's (IntegrityError, OperationalError, ...),
    and a connection the driver reports lost is invalidated, as SQLAlchemy does.
    """
    dialect = connection.dialect
    raw = None
    try:
        # Inside the try: a connection the driver already knows is closed refuses a cursor.
        raw = cursor(connection)
        if many:
            raw.executemany(sql, parameters)
        elif parameters is None:
            raw.execute(sql)
        else:
            raw.execute(sql, parameters)
    except dialect.loaded_dbapi.Error as exc:
        gone = dialect.is_disconnect(exc, connection.connection.dbapi_connection, raw)
        if gone:
            connection.invalidate(exc)
        raise sa.exc.DBAPIError.instance(sql, parameters, exc, dialect.loaded_dbapi.Error,
                                         connection_invalidated=gone, dialect=dialect) from exc
    return raw


def fetch_one(connection: sa.Connection, statement: Statement, values: dict[str, Any], *,
              begin: bool = False) -> Any:
    """The first row of a query as a named row, or None.

    Every row is fetched: a SQLite statement not read to its end keeps its snapshot
    open on the connection, and a later transaction there would start from it.
    """
    found = execute(connection, statement, values, begin=begin).fetchall()
    return statement.rows(found[:1])[0] if found else None


@dataclass(frozen=True)
class Write:
    """A write whose result nobody reads: SQL for one dialect's driver, positional parameters.

    ``sql`` is one statement. On PostgreSQL it may first need data-modifying
    statements of its own (``ctes``: a name and SQL each, run as ``WITH name AS
    (...)``); the parameters then come in the order the text holds them, the ctes'
    first. A unit of work on PostgreSQL joins its writes into one statement
    (:func:`compose`). ``retry``, when given, is asked about an IntegrityError of the
    write: a Write it returns is tried instead (another name for a channel whose name
    was taken, say); None gives up and the error stands. ``guarded``, when given,
    makes the same write as a part of a joined statement that happens only when the
    part it names (the guard: an update that must find its row) returned a row.
    """

    sql: str
    parameters: tuple[Any, ...]
    ctes: tuple[tuple[str, str], ...] = ()
    retry: Callable[[sa.exc.IntegrityError], "Write | None"] | None = None
    guarded: Callable[[str], "Write"] | None = None

    @property
    def text(self) -> str:
        """The whole statement."""
        if not self.ctes:
            return self.sql
        return "WITH " + ", ".join(f"{name} AS ({sql})" for name, sql in self.ctes) + " " + self.sql


GUARD = "guard"


def compose(writes: Sequence[Write], guard: Write | None = None) -> Write | None:
    """PostgreSQL: writes joined into one statement, or None when their ctes' names clash.

    Every write but the last becomes a data-modifying statement of a WITH (named
    ``write_<n>``), the last is the main statement; PostgreSQL runs each exactly
    once, to completion, as one atomic statement. They all see the snapshot the
    statement started from and none sees another's rows, and a row may not be
    changed twice in one statement: only writes that do not depend on each other
    may be joined (new rows, an update of a row no other write touches), which is
    what a unit of work defers. The joined write retries when one of its writes
    would (see :class:`Write`), with that write replaced.

    With a guard (an UPDATE ... RETURNING that must find its row: the save of an
    incident read without a lock, at the version it was read), the guard comes first
    (as ``GUARD``), every write in its guarded form, and the statement answers how
    many rows the guard changed (``SELECT count(*)``): none means that nothing was
    written. None when a write has no guarded form or may be retried.
    """
    ctes: list[tuple[str, str]] = []
    parameters: list[Any] = []
    if guard is not None:
        if guard.retry is not None or any(write.guarded is None or write.retry is not None for write in writes):
            return None
        ctes.extend([*guard.ctes, (GUARD, guard.sql)])
        parameters.extend(guard.parameters)
        writes = [*(write.guarded(GUARD) for write in writes),  # type: ignore[misc]
                  Write(f"SELECT count(*) FROM {GUARD}", ())]
    for index, write in enumerate(writes):
        ctes.extend(write.ctes)
        if index < len(writes) - 1:
            ctes.append((f"write_{index}", write.sql))
        parameters.extend(write.parameters)
    if len({name for name, _sql in ctes}) != len(ctes):
        return None

    def retry(error: sa.exc.IntegrityError) -> Write | None:
        for index, write in enumerate(writes):
            replacement = write.retry(error) if write.retry is not None else None
            if replacement is not None:
                return compose([*writes[:index], replacement, *writes[index + 1:]])
        return None

    return Write(writes[-1].sql, tuple(parameters), tuple(ctes),
                 retry if any(write.retry is not None for write in writes) else None)


RETRIES = 8


def run(connection: sa.Connection, write: Write, *, may_retry: bool) -> Any:
    """Execute write on the connection's cursor; when may_retry, as its ``retry`` says (at most RETRIES times).

    Only where a failed statement leaves nothing behind may it be retried: a
    statement in autocommit, or on SQLite (a failed statement is undone alone). In a
    PostgreSQL transaction an error ends the transaction, so the error stands.
    """
    attempt = 1
    while True:
        try:
            return execute_sql(connection, write.text, write.parameters)
        except sa.exc.IntegrityError as error:
            if not may_retry or write.retry is None or attempt >= RETRIES:
                raise
            replacement = write.retry(error)
            if replacement is None:
                raise
            write, attempt = replacement, attempt + 1


def violates(error: sa.exc.IntegrityError, constraint: sa.UniqueConstraint) -> bool:
    """True when error is a violation of this unique constraint (by name on PostgreSQL, by columns on SQLite)."""
    name = getattr(getattr(error.orig, "diag", None), "constraint_name", None)
    if name is not None:
        return name == constraint.name
    # SQLite: "UNIQUE constraint failed: table.a, table.b"
    table = constraint.table.name
    return str(error.orig).endswith(", ".join(f"{table}.{column.name}" for column in constraint.columns))
