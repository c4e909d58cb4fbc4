"""The store: migrations, transactions, errors, the one-writer protocol between processes, backup and upgrade."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from xinstruct.errors import StoreBusy, StoreError
from xinstruct.store import MIGRATIONS, Store


def test_fresh_store_applies_every_migration_in_order(store):
    assert store.migrations() == sorted(name for name, _ in MIGRATIONS)
    assert store.migrate() == []  # idempotent


def test_failed_transaction_writes_nothing(store):
    def half(tx):
        tx.execute("INSERT INTO settings VALUES ('a', '1')")
        tx.execute("INSERT INTO no_such_table VALUES (1)")

    with pytest.raises(StoreError, match="no_such_table"):
        store.write(half)
    assert store.get_setting("a") is None


def test_duckdb_errors_become_store_errors_with_the_message(store):
    with pytest.raises(StoreError, match="database error"):
        with store.session() as tx:
            tx.execute("SELEC 1")


def test_placeholders_keep_hostile_values_as_data(store):
    evil = "x'); DROP TABLE settings; --"
    store.set_setting(evil, evil)
    assert store.get_setting(evil) == evil


def test_concurrent_updates_of_one_row_are_retried_not_lost(file_store):
    file_store.set_setting("counter", "0")

    def bump(tx):
        value = int(tx.scalar("SELECT value FROM settings WHERE key = 'counter'"))
        tx.execute("UPDATE settings SET value = ? WHERE key = 'counter'", [str(value + 1)])

    threads = [threading.Thread(target=lambda: [file_store.write(bump) for _ in range(10)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert file_store.get_setting("counter") == "40"


HOLD = """
import sys, time
from xinstruct.store import Store
store = Store(sys.argv[1])
with store.session() as tx:
    print("ready", flush=True)
    time.sleep(float(sys.argv[2]))
    tx.execute("INSERT INTO settings VALUES ('holder', 'done')")
store.close()
"""


def hold(path: str, seconds: float) -> subprocess.Popen:
    """Another process that holds the database file for `seconds` (returns once it holds it)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, path, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_second_process_waits_for_the_lock_instead_of_failing(tmp_path):
    path = str(tmp_path / "x.duckdb")
    Store(path).close()
    proc = hold(path, 1.5)
    start = time.monotonic()
    store = Store(path, busy_timeout=60)
    store.set_setting("waiter", "in")
    waited = time.monotonic() - start
    assert proc.wait(30) == 0
    assert waited > 0.3  # it really had to wait for the other process
    assert store.get_setting("holder") == "done" and store.get_setting("waiter") == "in"


def test_busy_timeout_gives_a_clear_error(tmp_path):
    path = str(tmp_path / "x.duckdb")
    Store(path).close()
    proc = hold(path, 3)
    with pytest.raises(StoreBusy, match="held by another process"):
        Store(path, busy_timeout=0.3)
    assert proc.wait(30) == 0


def test_backup_and_restore_round_trip_exactly(file_store, tmp_path):
    file_store.set_setting("guidelines", "Be kind. ✓ اردو")
    backup = file_store.backup(tmp_path / "bk")
    restored = Store.restore(backup, tmp_path / "restored.duckdb")
    assert restored.get_setting("guidelines") == "Be kind. ✓ اردو"
    assert restored.migrations() == file_store.migrations()
    with pytest.raises(StoreError, match="already exists"):
        Store.restore(backup, tmp_path / "restored.duckdb")


def test_an_older_database_upgrades_cleanly(tmp_path):
    old = Store(tmp_path / "old.duckdb", migrate=False)
    old.migrate(upto=MIGRATIONS[0][0])
    old.set_setting("kept", "yes")
    assert old.migrations() == [MIGRATIONS[0][0]]
    upgraded = Store(tmp_path / "old.duckdb")
    assert upgraded.migrations() == [name for name, _ in MIGRATIONS]
    assert upgraded.get_setting("kept") == "yes"


def test_nested_sessions_do_not_wait_for_themselves_when_another_process_waits(file_store):
    import os
    from pathlib import Path

    marker = Path(f"{file_store.path}.wait.{os.getppid()}")  # a live process that is not us "waits"
    done = threading.Event()

    def nested():
        with file_store.session() as tx:
            marker.touch()
            file_store.set_setting("inner", "ok")  # a write inside an open session
            tx.execute("SELECT 1")
        done.set()

    thread = threading.Thread(target=nested, daemon=True)
    thread.start()
    try:
        assert done.wait(20), "nested session deadlocked"
    finally:
        marker.unlink(missing_ok=True)
    assert file_store.get_setting("inner") == "ok"


def test_an_idle_process_releases_the_file_for_others(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "x.duckdb"
    store = Store(path)
    store.set_setting("mine", "1")  # the file stays open for a short idle grace period
    code = ("from xinstruct.store import Store; s = Store(%r, busy_timeout=30); s.set_setting('theirs', '2')" % str(path))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert store.get_setting("theirs") == "2"


def test_a_held_store_stays_open_while_idle_and_still_lets_a_waiting_process_in(tmp_path):
    import subprocess
    import sys
    import time

    from xinstruct.store import engine as store_mod

    path = tmp_path / "x.duckdb"
    store = Store(path)
    shared = store._shared()
    with store.held():
        store.set_setting("mine", "1")
        time.sleep(store_mod.IDLE_CLOSE_SECONDS + 1)
        assert shared.con is not None  # held: not closed (and checkpointed) between sessions seconds apart
        code = ("from xinstruct.store import Store; s = Store(%r, busy_timeout=30); s.set_setting('theirs', '2')"
                % str(path))
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
        assert time.monotonic() - start < 25
        assert store.get_setting("theirs") == "2"
    time.sleep(store_mod.IDLE_CLOSE_SECONDS + 1)
    assert shared.con is None  # released: the usual idle close applies again


# ---------------------------------------------------------------------------------------------------------------------
# Wait markers name their holder: a reused PID or a live unrelated process never degrades the store
# ---------------------------------------------------------------------------------------------------------------------
def _live_unrelated_process():
    import subprocess

    return subprocess.Popen(["sleep", "120"])  # alive for the whole test, never waiting for our file


def test_a_marker_whose_pid_now_belongs_to_another_live_process_is_cleared(file_store):
    import os
    from pathlib import Path

    from xinstruct.store import engine as store_mod

    proc = _live_unrelated_process()
    try:
        marker = Path(f"{file_store.path}.wait.{proc.pid}")
        # written by a process that had this PID before (another start time); the PID is alive again now
        marker.write_text(f"{proc.pid} 1\n")
        assert not file_store._others_waiting()
        assert not marker.exists(), "the left-over marker was removed"
        # the same PID with its real start time and a fresh heartbeat: a real waiter (control)
        marker.write_text(f"{proc.pid} {store_mod._start_time(proc.pid)}\n")
        assert file_store._others_waiting()
        # ... until it stops touching the marker: left over, even though the process lives on
        old = time.time() - store_mod.MARKER_STALE_SECONDS - 1
        os.utime(marker, (old, old))
        assert not file_store._others_waiting() and not marker.exists()
        # an old-format marker (no start time) of a live process that does not touch it any more
        marker.touch()
        os.utime(marker, (old, old))
        assert not file_store._others_waiting() and not marker.exists()
    finally:
        proc.kill()
        proc.wait()


def test_a_left_over_marker_of_a_live_process_does_not_make_every_session_reopen_the_file(file_store, monkeypatch):
    from pathlib import Path

    from xinstruct.store import engine as store_mod

    proc = _live_unrelated_process()
    opened = []
    real_attach = store_mod._attach

    def counting(*args, **kwargs):
        opened.append(args)
        return real_attach(*args, **kwargs)

    try:
        Path(f"{file_store.path}.wait.{proc.pid}").write_text(f"{proc.pid} 1\n")  # reused PID, live process
        file_store.close()
        monkeypatch.setattr(store_mod, "_attach", counting)
        start = time.monotonic()
        for i in range(30):  # what the app does per click: sessions seconds apart or back to back
            file_store.set_setting("n", str(i))
            assert file_store.get_setting("n") == str(i)
        elapsed = time.monotonic() - start
    finally:
        proc.kill()
        proc.wait()
    assert len(opened) == 1, f"the file was opened {len(opened)} times for 60 sessions (closed after each)"
    print(f"\n60 sessions with a left-over marker of a live process: {elapsed * 1000:.0f} ms, {len(opened)} open")
