"""compute_pgbouncer_ini: the pool that governs the database set, every other byte of the ini as it was.

The table gives each case's whole expected text; the property draws inis from the shapes pgBouncer and the
reader accept and checks that the reader reads the new pool from the result, and that the result is the input
with pool-size values changed and pool-size settings added, nothing else.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfpilot.actuate.pgbouncer_ini import compute_pgbouncer_ini
from perfpilot.api.status import PoolSize
from perfpilot.observe.workload import WorkloadSpecError, parse_pgbouncer_ini


def _pool(size: int, reserve: int) -> PoolSize:
    return PoolSize(default_pool_size=size, reserve_pool_size=reserve)


def _changed_lines(before: str, after: str) -> list[str]:
    """The lines a line diff removes ("- ") and adds ("+ "), line endings included."""
    return [line for line in difflib.ndiff(before.splitlines(keepends=True), after.splitlines(keepends=True))
            if line.startswith(("- ", "+ "))]


# (ini, pool for app, the ini expected back)
EDITS = {
    "global keys present: both edited in place": (
        "[pgbouncer]\nlisten_port = 6432\ndefault_pool_size = 10\nreserve_pool_size = 2\n",
        _pool(25, 4),
        "[pgbouncer]\nlisten_port = 6432\ndefault_pool_size = 25\nreserve_pool_size = 4\n",
    ),
    "global keys absent: added after the section's last setting, before its trailing blank and comment": (
        "[pgbouncer]\nlisten_port = 6432\n\n; the databases\n[databases]\napp = host=db\n",
        _pool(25, 4),
        "[pgbouncer]\nlisten_port = 6432\ndefault_pool_size = 25\nreserve_pool_size = 4\n\n; the databases\n"
        "[databases]\napp = host=db\n",
    ),
    "one global key present, the other added": (
        "[pgbouncer]\nreserve_pool_size = 2\nlisten_port = 6432\n",
        _pool(25, 4),
        "[pgbouncer]\nreserve_pool_size = 4\nlisten_port = 6432\ndefault_pool_size = 25\n",
    ),
    "no [pgbouncer] section: one added at the end": (
        "; pools\n[databases]\napp = host=db\n",
        _pool(25, 4),
        "; pools\n[databases]\napp = host=db\n[pgbouncer]\ndefault_pool_size = 25\nreserve_pool_size = 4\n",
    ),
    "an empty ini: a [pgbouncer] section": (
        "",
        _pool(25, 0),
        "[pgbouncer]\ndefault_pool_size = 25\n",
    ),
    "no line ending on the last line: one given before the added lines": (
        "[pgbouncer]\nlisten_port = 6432",
        _pool(25, 4),
        "[pgbouncer]\nlisten_port = 6432\ndefault_pool_size = 25\nreserve_pool_size = 4\n",
    ),
    "spacing and indentation around a global value kept": (
        "[pgbouncer]\n   default_pool_size\t=   10   \nreserve_pool_size=2\n",
        _pool(25, 4),
        "[pgbouncer]\n   default_pool_size\t=   25   \nreserve_pool_size=4\n",
    ),
    "an octal or hex global value written back in decimal": (
        "[pgbouncer]\ndefault_pool_size = 010\nreserve_pool_size = 0x1A\n",
        _pool(25, 4),
        "[pgbouncer]\ndefault_pool_size = 25\nreserve_pool_size = 4\n",
    ),
    "a value already at its target left as written": (
        "[pgbouncer]\ndefault_pool_size = 010\nreserve_pool_size = +2\n",
        _pool(8, 2),
        "[pgbouncer]\ndefault_pool_size = 010\nreserve_pool_size = +2\n",
    ),
    "a reserve at its default, not written: nothing added": (
        "[pgbouncer]\nlisten_port = 6432\n",
        _pool(20, 0),
        "[pgbouncer]\nlisten_port = 6432\n",
    ),
    "a key given twice: the later one, which pgBouncer applies, edited": (
        "[pgbouncer]\ndefault_pool_size = 10\ndefault_pool_size = 12\n",
        _pool(25, 0),
        "[pgbouncer]\ndefault_pool_size = 10\ndefault_pool_size = 25\n",
    ),
    "two [pgbouncer] sections: the last one, which starts afresh, edited and added to": (
        "[pgbouncer]\ndefault_pool_size = 10\nreserve_pool_size = 2\n[databases]\napp = host=db\n"
        "[pgbouncer]\ndefault_pool_size = 12\n\n",
        _pool(25, 4),
        "[pgbouncer]\ndefault_pool_size = 10\nreserve_pool_size = 2\n[databases]\napp = host=db\n"
        "[pgbouncer]\ndefault_pool_size = 25\nreserve_pool_size = 4\n\n",
    ),
    "a header with a comment, comments holding a setting": (
        "; default_pool_size = 5\n[pgbouncer] ; main\n# reserve_pool_size = 9\ndefault_pool_size = 10\n",
        _pool(25, 4),
        "; default_pool_size = 5\n[pgbouncer] ; main\n# reserve_pool_size = 9\ndefault_pool_size = 25\n"
        "reserve_pool_size = 4\n",
    ),
    "per-database pool_size and reserve_pool: edited in the connection string, the globals untouched": (
        "[databases]\napp = host=db pool_size=7 reserve_pool=1 dbname=shop\n[pgbouncer]\ndefault_pool_size = 30\n"
        "reserve_pool_size = 5\n",
        _pool(12, 3),
        "[databases]\napp = host=db pool_size=12 reserve_pool=3 dbname=shop\n[pgbouncer]\ndefault_pool_size = 30\n"
        "reserve_pool_size = 5\n",
    ),
    "per-database pool_size without a reserve: reserve_pool added to the string, not the shared default": (
        "[databases]\napp = host=db pool_size=7   \nother = host=db\n[pgbouncer]\nreserve_pool_size = 1\n",
        _pool(12, 3),
        "[databases]\napp = host=db pool_size=12 reserve_pool=3   \nother = host=db\n[pgbouncer]\n"
        "reserve_pool_size = 1\n",
    ),
    "per-database reserve only: the reserve in the string, the pool size in [pgbouncer]": (
        "[databases]\napp = host=db reserve_pool=1\n[pgbouncer]\ndefault_pool_size = 30\n",
        _pool(12, 3),
        "[databases]\napp = host=db reserve_pool=3\n[pgbouncer]\ndefault_pool_size = 12\n",
    ),
    "the 1.24 name reserve_pool_size on the line edited as it is": (
        "[databases]\napp = host=db pool_size=7 reserve_pool_size=1\n",
        _pool(12, 3),
        "[databases]\napp = host=db pool_size=12 reserve_pool_size=3\n",
    ),
    "quoted values stay quoted; spaces around = kept; a quoted password holding pool_size untouched": (
        "[databases]\napp = host=db password='it''s pool_size=1' pool_size = '30' reserve_pool  =  2\n",
        _pool(12, 3),
        "[databases]\napp = host=db password='it''s pool_size=1' pool_size = '12' reserve_pool  =  3\n",
    ),
    "a pool_size given twice on the line: the later one edited": (
        "[databases]\napp = host=db pool_size=5 pool_size=7\n",
        _pool(12, 0),
        "[databases]\napp = host=db pool_size=5 pool_size=12\n",
    ),
    "the * fallback line governs a database without its own line: edited": (
        "[databases]\nother = host=db pool_size=5\n* = host=db pool_size=7 reserve_pool=1\n",
        _pool(12, 3),
        "[databases]\nother = host=db pool_size=5\n* = host=db pool_size=12 reserve_pool=3\n",
    ),
    "the database's own line wins over *: * untouched, the globals edited": (
        "[databases]\n* = host=db pool_size=7\napp = host=db\n[pgbouncer]\ndefault_pool_size = 30\n",
        _pool(12, 0),
        "[databases]\n* = host=db pool_size=7\napp = host=db\n[pgbouncer]\ndefault_pool_size = 12\n",
    ),
    "a database given twice: the later line, which pgBouncer applies, edited": (
        "[databases]\napp = host=db pool_size=5\napp = host=db2 pool_size=7\n",
        _pool(12, 0),
        "[databases]\napp = host=db pool_size=5\napp = host=db2 pool_size=12\n",
    ),
    "a database name in other case is another database: App's line untouched": (
        "[databases]\nApp = host=db pool_size=5\napp = host=db\n[pgbouncer]\ndefault_pool_size = 30\n",
        _pool(12, 0),
        "[databases]\nApp = host=db pool_size=5\napp = host=db\n[pgbouncer]\ndefault_pool_size = 12\n",
    ),
    "names the reader does not size, in any case, untouched": (
        "[databases]\napp = Host=db DbName=shop pool_size=5\n[pgbouncer]\nListen_Port = 6432\n",
        _pool(12, 0),
        "[databases]\napp = Host=db DbName=shop pool_size=12\n[pgbouncer]\nListen_Port = 6432\n",
    ),
    "a tab does not separate connection parameters: the string holds no pool_size, the global is edited": (
        "[databases]\napp = host=db\tpool_size=7\n[pgbouncer]\ndefault_pool_size = 30\n",
        _pool(12, 0),
        "[databases]\napp = host=db\tpool_size=7\n[pgbouncer]\ndefault_pool_size = 12\n",
    ),
    "CRLF line endings kept, and used for the added lines": (
        "[pgbouncer]\r\nlisten_port = 6432\r\ndefault_pool_size = 10\r\n\r\n[databases]\r\napp = host=db\r\n",
        _pool(25, 4),
        "[pgbouncer]\r\nlisten_port = 6432\r\ndefault_pool_size = 25\r\nreserve_pool_size = 4\r\n\r\n[databases]\r\n"
        "app = host=db\r\n",
    ),
    "CRLF on a database line: the reserve added before the line ending": (
        "[databases]\r\napp = host=db pool_size=7\r\n",
        _pool(12, 3),
        "[databases]\r\napp = host=db pool_size=12 reserve_pool=3\r\n",
    ),
}


@pytest.mark.parametrize(("ini", "pool", "expected"), EDITS.values(), ids=EDITS.keys())
def test_the_governing_pool_values_are_edited_and_nothing_else(ini: str, pool: PoolSize, expected: str) -> None:
    edited = compute_pgbouncer_ini(ini, database="app", pool=pool)
    assert edited == expected
    read = parse_pgbouncer_ini(edited, database="app")
    assert (read.default_pool_size, read.reserve_pool_size) == (pool.default_pool_size, pool.reserve_pool_size)


def test_comments_order_and_other_settings_are_kept_byte_for_byte() -> None:
    ini = ("; pgbouncer.ini for the shop\r\n"
           "[databases]\r\n"
           "; the application's database\r\n"
           "app = host=shop-db port=5432 dbname=shop pool_size=20\r\n"
           "reports = host=reports-db pool_size=5 reserve_pool=1\r\n"
           "\r\n"
           "[pgbouncer]\r\n"
           "  listen_addr = 0.0.0.0   ; every interface\r\n"
           "pool_mode=transaction\r\n"
           "default_pool_size = 10\r\n"
           "reserve_pool_size = 2\r\n"
           "max_client_conn = 500\r\n"
           "\r\n"
           "# end of settings\r\n")
    edited = compute_pgbouncer_ini(ini, database="app", pool=_pool(35, 4))
    assert _changed_lines(ini, edited) == [
        "- app = host=shop-db port=5432 dbname=shop pool_size=20\r\n",
        "+ app = host=shop-db port=5432 dbname=shop pool_size=35 reserve_pool=4\r\n",
    ]


def test_the_same_pool_gives_the_same_text() -> None:
    ini = "[databases]\napp = host=db pool_size='7'\n[pgbouncer]\nreserve_pool_size = 010\n"
    assert compute_pgbouncer_ini(ini, database="app", pool=_pool(7, 8)) == ini


@pytest.mark.parametrize(("ini", "pool", "refusal"), [
    ("[pgbouncer]\nDefault_Pool_Size = 8\n", _pool(12, 0), r"line 2: pgBouncer reads names as written and refuses "
                                                           r"'Default_Pool_Size'"),
    ("[PgBouncer]\ndefault_pool_size = 8\n", _pool(12, 0), r"line 1: .* refuses 'PgBouncer'"),
    ("[databases]\napp = host=db Pool_Size=7\n", _pool(12, 0), r"\[databases\] app: .* refuses 'Pool_Size'"),
    ("[databases]\napp = host=db pool_size=many\n", _pool(12, 0),
     r"\[databases\] app pool_size: expected a whole number \(got 'many'\)"),
    ("[pgbouncer]\ndefault_pool_size = '30'\n", _pool(12, 0),
     r"\[pgbouncer\] default_pool_size: expected a whole number .*got \"'30'\""),
    ("[databases]\napp = host=db password='open\n", _pool(12, 0), r"\[databases\] app: not a key=value connection"),
    ("[pgbouncer]\n%include /etc/pgbouncer/more.ini\n", _pool(12, 0), r"line 2: the included file"),
    ("[users]\nshop = pool_size=5\n", _pool(12, 0), r"\[users\] shop: a per-user pool_size is not supported"),
    # Refused once edited: the cap would hold the pool under its new size, and a size past a C int wraps.
    ("[pgbouncer]\nmax_db_connections = 20\n", _pool(25, 0), r"\[pgbouncer\] max_db_connections = 20 caps the pool "
                                                             r"under 25"),
    ("[pgbouncer]\n", _pool(2**31, 0), r"\[pgbouncer\] default_pool_size: expected at most 2147483647 "
                                       r"\(pgBouncer keeps a size in a C int\) \(got '2147483648'\)"),
    ("[databases]\napp = host=db pool_size=7\n", _pool(2**31, 0), r"\[databases\] app pool_size: expected at most"),
], ids=["setting name in other case", "section name in other case", "connection parameter in other case",
        "per-database size not a number", "quoted global size", "unclosed quote", "include", "per-user pool size",
        "cap under the new size", "global size past a C int", "per-database size past a C int"])
def test_an_ini_the_reader_refuses_is_refused_with_the_place_and_value(ini: str, pool: PoolSize,
                                                                       refusal: str) -> None:
    with pytest.raises(WorkloadSpecError, match=refusal) as refused:
        compute_pgbouncer_ini(ini, database="app", pool=pool, where="ConfigMap shop/pgbouncer: data.pgbouncer.ini")
    assert str(refused.value).startswith("ConfigMap shop/pgbouncer: data.pgbouncer.ini: ")


# --- the property: drawn inis ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    """A pool size as the ini writes it: the one kind of text the writer may change."""

    written: str
    quoted: bool = False

    @property
    def text(self) -> str:
        return f"'{self.written}'" if self.quoted else self.written


@dataclass(frozen=True)
class MayAddReserve:
    """Where a database line's connection string ends: the writer may add ``reserve_pool=N`` there."""


Piece = str | Size | MayAddReserve

_GLOBAL_SIZES = st.one_of(
    st.integers(0, 300).map(str),
    st.integers(0, 300).map(lambda size: f"0{size:o}"),  # octal, as strtol reads a leading 0
    st.integers(0, 300).map(lambda size: f"0x{size:X}"),
    st.integers(0, 300).map(lambda size: f"+{size}"),
)
_DATABASE_SIZES = st.one_of(st.integers(0, 300).map(str), st.integers(0, 300).map(lambda size: f"00{size}"))
_SPACES = st.sampled_from(["", " ", "  "])
_COMMENTS = st.sampled_from(["", "   ", "; default_pool_size = 5", "# [pgbouncer]", "  ; reserve_pool_size = 9",
                             "; app = host=db pool_size=3"])


@st.composite
def _pgbouncer_line(draw: st.DrawFn) -> tuple[Piece, ...]:
    if draw(st.booleans()):
        return (draw(st.sampled_from(["listen_port = 6432", "pool_mode=transaction", "Unknown_Key = 1",
                                      "max_client_conn = 500", "  ignore_startup_parameters = extra_float_digits"])),)
    name = draw(st.sampled_from(["default_pool_size", "reserve_pool_size"]))
    indent, before, after, trailing = (draw(st.sampled_from(["", "  ", "\t"])), draw(_SPACES), draw(_SPACES),
                                       draw(_SPACES))
    return (f"{indent}{name}{before}={after}", Size(draw(_GLOBAL_SIZES)), trailing)


@st.composite
def _database_line(draw: st.DrawFn) -> tuple[Piece, ...]:
    name = draw(st.sampled_from(["app", "app", "app", "other", "*", "*", "App"]))
    parameters: list[tuple[Piece, ...]] = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["host", "dbname", "password", "pool_size", "pool_size", "reserve_pool",
                                     "reserve_pool_size"]))
        if kind == "host":
            parameters.append(("host=db",))
        elif kind == "dbname":
            parameters.append(("dbname = shop",))
        elif kind == "password":
            parameters.append((draw(st.sampled_from(["password='it''s pool_size=1'", "password='x reserve_pool=2'"])),))
        else:
            equals = draw(st.sampled_from(["=", " = ", "  ="]))
            parameters.append((f"{kind}{equals}", Size(draw(_DATABASE_SIZES), quoted=draw(st.booleans()))))
    pieces: list[Piece] = [f"{name}{draw(_SPACES)}={draw(_SPACES)}"]
    for index, parameter in enumerate(parameters):
        if index:
            pieces.append(draw(st.sampled_from([" ", "  "])))
        pieces.extend(parameter)
    return (*pieces, MayAddReserve(), draw(_SPACES))


@st.composite
def _ini(draw: st.DrawFn) -> tuple[list[tuple[Piece, ...]], str, bool]:
    """(the lines as pieces, the line ending, whether the last line has one)."""
    lines: list[tuple[Piece, ...]] = [(comment,) for comment in draw(st.lists(_COMMENTS, max_size=2))]
    for _ in range(draw(st.integers(0, 3))):
        header = draw(st.sampled_from(["[pgbouncer]", "[pgbouncer] ; main", "  [pgbouncer]", "[databases]",
                                       "[databases]", "[databases]"]))
        lines.append((header,))
        setting = _database_line() if header == "[databases]" else _pgbouncer_line()
        lines.extend(draw(st.lists(st.one_of(setting, _COMMENTS.map(lambda comment: (comment,))), max_size=5)))
    return lines, draw(st.sampled_from(["\n", "\r\n"])), draw(st.booleans())


def _text(lines: list[tuple[Piece, ...]], ending: str, last_ending: bool) -> str:
    joined = ending.join("".join(piece if isinstance(piece, str) else piece.text if isinstance(piece, Size) else ""
                                 for piece in line) for line in lines)
    return joined + ending if lines and last_ending else joined


def _may_become(lines: list[tuple[Piece, ...]], ending: str, last_ending: bool) -> re.Pattern[str]:
    """What the writer may make of the ini: each size as it was or other digits (captured, in order), a
    ``reserve_pool=N`` where a connection string ends, and pool-size lines between lines (in a new
    [pgbouncer] section at the end, when the ini has none)."""
    end = re.escape(ending)
    added = rf"(?:(?:default_pool_size|reserve_pool_size) = [0-9]+{end})*"
    pattern = ""
    for number, line in enumerate(lines, start=1):
        for piece in line:
            if isinstance(piece, str):
                pattern += re.escape(piece)
            elif isinstance(piece, Size):
                value = rf"({re.escape(piece.written)}|[0-9]+)"
                pattern += f"'{value}'" if piece.quoted else value
            else:
                pattern += "(?: reserve_pool=[0-9]+)?"
        # The last line may be given an ending, for the lines added after it.
        pattern += (end if number < len(lines) or last_ending else f"(?:{end})?") + added
    pattern += rf"(?:\[pgbouncer\]{end}{added})?"
    return re.compile(pattern)


@given(ini=_ini(), size=st.integers(1, 300), reserve=st.integers(0, 300))
def test_the_reader_reads_the_new_pool_from_an_ini_changed_only_in_pool_sizes(
        ini: tuple[list[tuple[Piece, ...]], str, bool], size: int, reserve: int) -> None:
    lines, ending, last_ending = ini
    text = _text(lines, ending, last_ending)
    live = parse_pgbouncer_ini(text, database="app")  # every draw is an ini the reader accepts
    pool = _pool(size, reserve)

    edited = compute_pgbouncer_ini(text, database="app", pool=pool)

    read = parse_pgbouncer_ini(edited, database="app")
    assert (read.default_pool_size, read.reserve_pool_size) == (size, reserve)
    # A text without a line break has no ending to follow: the writer's added lines end in \n.
    match = _may_become(lines, ending if ending in text else "\n", last_ending).fullmatch(edited)
    assert match is not None, f"changed beyond pool sizes:\n{_changed_lines(text, edited)}"
    originals = [piece.written for line in lines for piece in line if isinstance(piece, Size)]
    changed = [new for new, old in zip(match.groups(), originals, strict=True) if new != old]
    # Only the governing values change, each to its target.
    assert len(changed) <= 2
    assert set(changed) <= {str(size), str(reserve)}
    # Idempotent, and no change at all for the pool it already has.
    assert compute_pgbouncer_ini(edited, database="app", pool=pool) == edited
    if live.default_pool_size >= 1:
        assert compute_pgbouncer_ini(text, database="app", pool=_pool(live.default_pool_size,
                                                                      live.reserve_pool_size)) == text
