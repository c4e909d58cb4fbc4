"""Password hashing cost and a login burst: xinstruct's Argon2id parameters against argon2-cffi's defaults.

    .venv/bin/python bench/auth.py                  # 20 hashes per setting, a burst of 30 logins per setting
    .venv/bin/python bench/auth.py --hashes 50 --burst 60

For each setting: the median time to hash and to verify one password (one thread), the memory one hash needs (its
memory cost), then a burst: `--burst` threads log in at once through `auth.authenticate` (each with its own name, so the
lockout does not cut the burst short) on a temp store, with or without xinstruct's limit of `auth.HASH_SLOTS`.
Reported: wall time of the burst, the most hashes seen running at once, and the most memory the hashes could hold at
once (slots x memory cost). The baseline is the code before the limit: the old parameters, no limit. Prints a markdown table with machine, date and load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from argon2 import PasswordHasher  # noqa: E402

from common import cpu_name  # noqa: E402
from xinstruct import auth  # noqa: E402
from xinstruct.store import Store  # noqa: E402

SETTINGS = {  # name: (hasher, hashes allowed at once)
    "before: argon2-cffi default (t=3, 64 MiB, p=4), no limit": (PasswordHasher(), None),
    "argon2-cffi default, at most HASH_SLOTS at once": (PasswordHasher(), auth.HASH_SLOTS),
    "now: xinstruct (t=2, 19 MiB, p=1, OWASP minimum), at most HASH_SLOTS at once": (
        PasswordHasher(**auth.ARGON2), auth.HASH_SLOTS),
}


class Watched:
    """A hasher that records how many verifications run at once."""

    def __init__(self, inner: PasswordHasher):
        self.inner, self.lock, self.running, self.most = inner, threading.Lock(), 0, 0

    def verify(self, pw_hash, password):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            return self.inner.verify(pw_hash, password)
        finally:
            with self.lock:
                self.running -= 1

    def hash(self, password):
        return self.inner.hash(password)

    def check_needs_rehash(self, pw_hash):
        return False


def median_seconds(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def burst(hasher: PasswordHasher, slots: int | None, n: int, folder: Path) -> tuple[float, int]:
    store = Store(folder / f"burst-{time.monotonic_ns()}.duckdb")
    saved = auth._hasher, auth._DUMMY_HASH, auth._hash_slots
    watched = Watched(hasher)
    auth._hasher, auth._DUMMY_HASH = watched, hasher.hash("dummy")
    auth._hash_slots = threading.BoundedSemaphore(slots or n)
    try:
        for i in range(n):
            auth.add_user(store, f"user{i}", "correct horse battery", "reviewer", ["sw"])
        barrier = threading.Barrier(n + 1)

        def login(i):
            barrier.wait()
            assert auth.authenticate(store, f"user{i}", "correct horse battery") is not None

        threads = [threading.Thread(target=login, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        return time.perf_counter() - t0, watched.most
    finally:
        auth._hasher, auth._DUMMY_HASH, auth._hash_slots = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hashes", type=int, default=20, help="hashes and verifications timed per setting")
    ap.add_argument("--burst", type=int, default=30, help="simultaneous logins per setting")
    args = ap.parse_args()
    if args.hashes < 1 or args.burst < 1:
        ap.error("--hashes and --burst must be at least 1")
    load = os.getloadavg()
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; HASH_SLOTS={auth.HASH_SLOTS}")
    print()
    print("| setting | hash (median) | verify (median) | memory per hash | burst of "
          f"{args.burst} logins | most hashes at once | most hash memory at once |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (hasher, slots) in SETTINGS.items():
            stored = hasher.hash("correct horse battery")
            h = median_seconds(lambda: hasher.hash("correct horse battery"), args.hashes)
            v = median_seconds(lambda: hasher.verify(stored, "correct horse battery"), args.hashes)
            wall, most = burst(hasher, slots, args.burst, Path(tmp))
            mib = hasher.memory_cost / 1024
            print(f"| {name} | {h * 1000:.0f} ms | {v * 1000:.0f} ms | {mib:.0f} MiB | {wall:.2f} s | {most} | "
                  f"{most * mib:.0f} MiB |")


if __name__ == "__main__":
    main()
