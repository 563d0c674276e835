"""pgbouncer.ini edited by compute_pgbouncer_ini and reloaded by a real pgBouncer: it applies the new pool.

Each case starts pgBouncer (the Debian package, ``pgbouncer_harness``) on the ini, edits the file it runs on as
the operator edits the ConfigMap, sends ``RELOAD`` on the admin console, and reads ``SHOW DATABASES``: database
``app`` has the new pool size and reserve, and database ``other`` keeps what it had (an edit in the
connection string of ``app`` is for ``app`` alone).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pgbouncer_harness import pgbouncer_folder, running_pgbouncer

from perfpilot.actuate.pgbouncer_ini import compute_pgbouncer_ini
from perfpilot.api.status import PoolSize

pytestmark = pytest.mark.integration


@pytest.fixture
def folder() -> Iterator[Path]:
    with pgbouncer_folder() as path:
        yield path


# (ini, the new pool for app, (pool size, reserve) other has after the reload)
CASES = {
    "global keys present": (
        "[databases]\napp = host=db\nother = host=db pool_size=5\n[pgbouncer]\ndefault_pool_size = 10\n"
        "reserve_pool_size = 1\n",
        PoolSize(default_pool_size=25, reserve_pool_size=4),
        (5, 4),  # its own size, the shared reserve
    ),
    "global keys absent": (
        "[databases]\napp = host=db\nother = host=db\n; the settings\n[pgbouncer]\npool_mode = transaction\n",
        PoolSize(default_pool_size=25, reserve_pool_size=4),
        (25, 4),
    ),
    "per-database pool_size and reserve_pool": (
        "[databases]\napp = host=db pool_size=7 reserve_pool=1\nother = host=db\n[pgbouncer]\n"
        "default_pool_size = 30\nreserve_pool_size = 2\n",
        PoolSize(default_pool_size=12, reserve_pool_size=3),
        (30, 2),
    ),
    "per-database quoted pool_size, reserve_pool added": (
        "[databases]\napp = host=db pool_size='7'\nother = host=db\n[pgbouncer]\nreserve_pool_size = 2\n",
        PoolSize(default_pool_size=12, reserve_pool_size=3),
        (20, 2),
    ),
}


@pytest.mark.parametrize(("ini", "pool", "other_after"), CASES.values(), ids=CASES.keys())
def test_pgbouncer_applies_the_edited_pool_on_reload(folder: Path, ini: str, pool: PoolSize,
                                                     other_after: tuple[int, int]) -> None:
    wanted = (pool.default_pool_size, pool.reserve_pool_size)
    with running_pgbouncer(folder, ini) as pgbouncer:
        assert not isinstance(pgbouncer, str), pgbouncer
        assert pgbouncer.pool_sizes("app") != wanted  # so the reload is what changes it

        pgbouncer.config.write_text(compute_pgbouncer_ini(pgbouncer.config.read_text(), database="app", pool=pool))
        pgbouncer.admin("RELOAD")

        assert pgbouncer.pool_sizes("app") == wanted
        assert pgbouncer.pool_sizes("other") == other_after
