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
"""
from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

_CURSOR = "incident_driver_cursor"


def _decoder(column_type: sa.types.TypeEngine) -> Callable[[Any], Any] | None:
    if isinstance(column_type, sa.JSON):
        return lambda value: json.loads(value) if isinstance(value, (str, bytes)) else value
    if isinstance(column_type, sa.Boolean):
        return lambda value: value if value is None else bool(value)
    return None


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

    def prepared(self, dialect: sa.Dialect) -> tuple[str, list[str] | None, set[str]]:
        """The SQL text, the parameter order (None: named parameters) and the JSON parameters."""
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self.keys)
            order = list(compiled.positiontup) if compiled.positional else None
            encoded = {name for name, bind in compiled.binds.items() if isinstance(bind.type, sa.JSON)}
            self._fixed[dialect.name] = {name: bind.value for name, bind in compiled.binds.items()
                                         if not bind.required and bind.value is not None}
            found = self._compiled[dialect.name] = (compiled.string, order, encoded)
        return found

    def parameters(self, dialect: sa.Dialect, values: dict[str, Any]) -> Any:
        """values as the driver takes them for this dialect."""
        _sql, order, encoded = self.prepared(dialect)
        fixed = self._fixed[dialect.name]
        if fixed:
            values = {**fixed, **values}
        if encoded:
            values = {key: json.dumps(value) if key in encoded else value for key, value in values.items()}
        return values if order is None else tuple(values[name] for name in order)

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
