"""pgbouncer.ini with one database's pool resized, every other byte as it was; and the admin console commands
that bring a running pgBouncer to the pool an ini gives (pure: the callers read and write the ConfigMap, and
talk to pgBouncer).

The file is someone else's: its comments, order, spacing and line endings are theirs, and a GitOps diff of
perfpilot's change should show the pool sizes and nothing else. So the text is edited in place, at the values
``parse_pgbouncer_ini`` reads the pool from — the same line scan (``pgbouncer_ini_lines``,
``connection_parameters``), so the writer and the reader cannot disagree on which setting governs the pool:

- a ``pool_size=`` / ``reserve_pool=`` (or ``reserve_pool_size=``) on the database's [databases] line, or on
  the ``*`` line pgBouncer uses for a database without one, overrides the [pgbouncer] defaults: that value is
  edited, its quotes kept;
- else the [pgbouncer] ``default_pool_size`` / ``reserve_pool_size`` of the last [pgbouncer] section (a second
  one starts again from the defaults), its last line (a later setting wins);
- a size not written anywhere is added where it would govern: ``reserve_pool=`` on the database's line when
  that line sizes the pool itself, else a ``name = value`` line after the last setting of the [pgbouncer]
  section (a new section at the end when there is none).

A size already at its target is left as written (``010`` stays ``010`` for 8): the same pool gives the same
text.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfpilot.api.status import PoolSize
from perfpilot.observe.workload import (
    ConnectionParameter,
    IniLine,
    WorkloadSpecError,
    connection_parameters,
    parse_pgbouncer_defaults,
    parse_pgbouncer_ini,
    pgbouncer_ini_lines,
)

# The reserve's name in a connection string up to pgBouncer 1.23; 1.24 renamed it reserve_pool_size and still
# reads this one, so an added reserve works on either.
_RESERVE_PARAMETER = "reserve_pool"


def _line_ending(text: str) -> str:
    """The line ending of the file's first line, for the lines added: a CRLF file stays CRLF."""
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


def _database_line(lines: list[IniLine], database: str) -> IniLine | None:
    """The [databases] line pgBouncer configures ``database`` from: its own (the last, if given twice), else
    the ``*`` fallback's, as ``parse_pgbouncer_ini`` picks it."""
    for name in (database, "*"):
        own = [line for line in lines if line.section == "databases" and line.name == name]
        if own:
            return own[-1]
    return None


def _pgbouncer_section(lines: list[IniLine]) -> list[IniLine]:
    """The header and settings of the last [pgbouncer] section, the one pgBouncer applies; [] when none."""
    headers = [line.line_index for line in lines if line.name is None and line.section == "pgbouncer"]
    if not headers:
        return []
    return [line for line in lines if line.section == "pgbouncer" and line.line_index >= headers[-1]]


def compute_pgbouncer_ini(text: str, *, database: str, pool: PoolSize, where: str = "pgbouncer.ini") -> str:
    """``text`` with the pool of ``database`` at ``pool``: only the values that govern it changed or added.

    Raises ``WorkloadSpecError`` (naming the place and the value) for an ini ``parse_pgbouncer_ini`` refuses,
    and for one it would refuse once edited (a cap on server connections below the new size, a size past a C
    int).
    """
    live = parse_pgbouncer_ini(text, database=database, where=where)
    lines = pgbouncer_ini_lines(text, where=where)
    own = _database_line(lines, database)
    parameters = connection_parameters(own.value, where=f"{where}: [databases] {own.name}") if own else []
    # The last of each wins, as the reader (and pgBouncer) read the line from left to right.
    pool_parameter = next((p for p in reversed(parameters) if p.name == "pool_size"), None)
    reserve_parameter = next((p for p in reversed(parameters) if p.name in ("reserve_pool", "reserve_pool_size")),
                             None)
    section = _pgbouncer_section(lines)

    # (line index, start, end in the line without its ending, new text): values replaced or, start == end, added.
    edits: list[tuple[int, int, int, str]] = []
    added: list[str] = []  # "name = value" lines for the [pgbouncer] section

    def in_connection_string(line: IniLine, parameter: ConnectionParameter, size: int) -> None:
        start = line.value_at + parameter.value_at
        new = f"'{size}'" if parameter.value.startswith("'") else str(size)  # a quoted value stays quoted
        edits.append((line.line_index, start, start + len(parameter.value), new))

    def in_pgbouncer_section(name: str, size: int) -> None:
        setting = next((line for line in reversed(section) if line.name == name), None)
        if setting is None:
            added.append(f"{name} = {size}")
        else:
            edits.append((setting.line_index, setting.value_at, setting.value_at + len(setting.value), str(size)))

    if pool.default_pool_size != live.default_pool_size:
        if own is not None and pool_parameter is not None:
            in_connection_string(own, pool_parameter, pool.default_pool_size)
        else:
            in_pgbouncer_section("default_pool_size", pool.default_pool_size)
    if pool.reserve_pool_size != live.reserve_pool_size:
        if own is not None and reserve_parameter is not None:
            in_connection_string(own, reserve_parameter, pool.reserve_pool_size)
        elif own is not None and pool_parameter is not None:
            # The database sizes its own pool: its reserve goes beside it, not into the default other databases
            # share. After the string's last value, before any spaces that end the line.
            end = own.value_at + len(own.value)
            edits.append((own.line_index, end, end, f" {_RESERVE_PARAMETER}={pool.reserve_pool_size}"))
        else:
            in_pgbouncer_section("reserve_pool_size", pool.reserve_pool_size)

    edited = _apply(text, edits, added, after=section[-1].line_index if section else None)
    # Read back: the cap checks see the new size, and a writer that missed the governing value fails here
    # rather than in the cluster.
    after = parse_pgbouncer_ini(edited, database=database, where=where)
    if (after.default_pool_size, after.reserve_pool_size) != (pool.default_pool_size, pool.reserve_pool_size):
        raise WorkloadSpecError(f"{where}: the edited ini gives pool {after.default_pool_size} and reserve "
                                f"{after.reserve_pool_size} for {database}, not {pool.default_pool_size} and "
                                f"{pool.reserve_pool_size}: left unchanged")
    return edited


def _apply(text: str, edits: list[tuple[int, int, int, str]], added: list[str], *, after: int | None) -> str:
    """``text`` with ``edits`` made in their lines and the ``added`` lines after line ``after`` (the last line
    of the [pgbouncer] section; None: in a new section at the end). Lines split as the reader splits them."""
    lines = text.splitlines(keepends=True)
    ending = _line_ending(text)
    # Right to left within a line, so each edit's offsets still point at the original text.
    for index, start, end, new in sorted(edits, key=lambda edit: (edit[0], -edit[1])):
        body = lines[index].splitlines()[0]
        lines[index] = body[:start] + new + body[end:] + lines[index][len(body):]
    if not added:
        return "".join(lines)
    if after is None:
        added = ["[pgbouncer]", *added]
        after = len(lines) - 1
    if after >= 0 and lines[after] == lines[after].splitlines()[0]:
        lines[after] += ending  # the last line, without an ending: the added lines need one before them
    lines[after + 1:after + 1] = [line + ending for line in added]
    return "".join(lines)


@dataclass(frozen=True)
class AdminCommands:
    """What to send a running pgBouncer on its admin console so that it runs the pool its ini gives."""

    reload: bool = False  # re-read the ini: the only way to a size written on the database's line
    settings: tuple[tuple[str, int], ...] = ()  # (name, value) for SET, after any RELOAD (which reverts SETs)

    @property
    def statements(self) -> list[str]:
        return [*(["RELOAD"] if self.reload else []), *(f"SET {name} = {value}" for name, value in self.settings)]


def compute_admin_commands(text: str, *, database: str, shown: PoolSize | None, file_follows: bool = True,
                           where: str = "pgbouncer.ini") -> AdminCommands:
    """The commands that give ``database`` the pool of ``text`` on a pgBouncer that shows ``shown`` (its
    ``SHOW DATABASES`` row; None when it has no row for the database yet, as for one served by the ``*`` line
    before a client came).

    A size that ``[pgbouncer]`` governs is SET, which takes effect at once; one written on the database's line
    (or the ``*`` line's) can only be read from the file, so RELOAD. RELOAD reads the file the pod mounts,
    which lags the ConfigMap by up to the kubelet's sync period: a RELOAD before that reads the old pool, and
    the next evaluation sends it again. RELOAD also sets every ``[pgbouncer]`` value back to the file's, the
    sizes other databases share included, so both ``[pgbouncer]`` sizes are SET again after it, as the ConfigMap
    gives them. ``file_follows`` False (the ini mounted with subPath, which the kubelet never updates): no
    RELOAD, which could only go back to the old file. Nothing is sent for a size pgBouncer already shows.
    Raises ``WorkloadSpecError`` for an ini the reader refuses.
    """
    wanted = parse_pgbouncer_ini(text, database=database, where=where)
    defaults = parse_pgbouncer_defaults(text, where=where)
    own = _database_line(pgbouncer_ini_lines(text, where=where), database)
    parameters = connection_parameters(own.value, where=f"{where}: [databases] {own.name}") if own else []
    names = {parameter.name for parameter in parameters}
    on_line = {"default_pool_size": "pool_size" in names,
               "reserve_pool_size": bool(names & {"reserve_pool", "reserve_pool_size"})}
    sizes = {"default_pool_size": wanted.default_pool_size, "reserve_pool_size": wanted.reserve_pool_size}
    now = {"default_pool_size": shown.default_pool_size, "reserve_pool_size": shown.reserve_pool_size} if shown else {}
    differ = [name for name, size in sizes.items() if now.get(name) != size]
    # Without a row nothing shows whether a RELOAD is needed: the SETs alone are sent.
    if file_follows and shown is not None and any(on_line[name] for name in differ):
        return AdminCommands(reload=True, settings=(("default_pool_size", defaults.default_pool_size),
                                                    ("reserve_pool_size", defaults.reserve_pool_size)))
    return AdminCommands(settings=tuple((name, sizes[name]) for name in sizes if not on_line[name] and name in differ))
