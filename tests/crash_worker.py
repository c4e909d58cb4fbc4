"""A pipeline stage or a reviewer in a process of its own, for the crash and concurrency tests (tests/test_crash.py,
tests/test_reliability.py). The tests start it, wait for its progress lines on stdout and kill it with SIGKILL.

    python tests/crash_worker.py generate  DB [--sleep S] [--batch N] [--pause-write N]
    python tests/crash_worker.py refine    DB [--sleep S] [--batch N] [--pause-write N]
    python tests/crash_worker.py diversify DB [--pause-write N]
    python tests/crash_worker.py export    DB --out DIR --format jsonl|hf [--shard-rows N] [--pause-rename N]
    python tests/crash_worker.py decide    DB --user NAME --langs sw [--pause-decision N] [--limit N]
    python tests/crash_worker.py migrate   DB [--pause-write N]        (apply pending migrations)
    python tests/crash_worker.py open      DB                           (open the store: waits while it is held)

Lines on stdout (flushed at once):
    READY                    models and imports loaded, about to start the stage
    WRITE <n>                store.write number n has committed
    PAUSED                   stopped on purpose inside a transaction (or before a rename); waiting to be killed
    INTENT <request_id>      (decide) about to record this decision
    DONE <request_id> <id>   (decide) record_decision returned this decision id
    FINISHED <json>          the stage ran to its end; stats

`--pause-write N` stops *inside* the N-th store.write, after the unit of work ran and before COMMIT, so a kill there is
a crash in the middle of a transaction. `--pause-decision N` does the same for the N-th record_decision. Without a
pause the test kills at a moment of its choosing (e.g. while the fake model sleeps).

The deterministic fake models and embedder live here so that the tests run the very same ones in-process, and so does
`Worker`, the tests' side: it starts this script, collects its lines and kills it by its pid.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from xinstruct.models.fake import FakeModel  # noqa: E402

TOPICS = ["rice", "football", "rain", "school", "bank", "music", "market", "river"]


# ---------------------------------------------------------------------------------------------------------------------
# Deterministic fakes shared with the tests
# ---------------------------------------------------------------------------------------------------------------------
def doc_text(lang: str, i: int) -> str:
    """A document about TOPICS[i % len] numbered i (long enough for every filter; not used through ingest here)."""
    topic = TOPICS[i % len(TOPICS)]
    return f"Habari za {topic} namba {i} katika lugha {lang}. " * 12


_TEXT_RE = re.compile(r"### Text:\n(.*?)\n\n### English Instruction:", re.S)


def _generate_instruction(prompt: str) -> str:
    texts = _TEXT_RE.findall(prompt)
    text = texts[-1] if texts else ""
    m = re.search(r"Habari za (\w+) namba (\d+)", text)
    if not m:
        return "Write a short text about this topic."
    topic, n = m.group(1), int(m.group(2))
    if n % 7 == 3:
        return ""  # rejected: empty output (exercises the rejected path)
    return f"Summarize the news report about {topic} number {n} for a reader."


class SlowFake(FakeModel):
    """FakeModel that sleeps `sleep` seconds per call (a batch on a slow machine) and says READY-like progress."""

    def __init__(self, *args, sleep: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.sleep = sleep

    def generate(self, prompts, params):
        time.sleep(self.sleep)
        return super().generate(prompts, params)

    def label_probs(self, prompts, words):
        time.sleep(self.sleep / 2)
        return super().label_probs(prompts, words)


def generator_model(sleep: float = 0.0) -> FakeModel:
    return SlowFake("fake-gen", generate_fn=_generate_instruction, sleep=sleep)


# The refine fake (scored by the gain evaluator): an instruction "... draft L." has quality L; the likelihood gain grows
# with L, so L=0 and L=1 are 'flawed', L>=2 'good', and 'nonsense' instructions are 'bad'. The refiner samples from the
# generation prompt (the text only) with the round as its seed: round R writes "draft R" for the text's topic and number,
# except for topic 'bank', whose rewrite is its original instruction (no option: it stays flawed, 'unchanged').
_DRAFT_RE = re.compile(r"draft (\d+)")


def refine_instruction(i: int) -> str:
    topic = TOPICS[i % len(TOPICS)]
    if i % 5 == 4:
        return f"Tell me nonsense about {topic} please, number {i}."
    level = 2 if i % 5 == 0 else 0
    return f"Describe what happened with {topic} in report {i}, draft {level}."


def _gain(instruction: str) -> float:
    if "nonsense" in instruction:
        return -0.1
    m = _DRAFT_RE.search(instruction)
    return -0.04 + 0.03 * (int(m.group(1)) if m else 0)  # draft 0, 1: flawed; draft 2: good (refine.combine)


def _instruction_in(prompt: str) -> str:
    header = "### Instruction:\n"
    return prompt.rsplit(header, 1)[1].split("\n", 1)[0] if header in prompt else ""


_DOC_RE = re.compile(r"Habari za (\w+) namba (\d+)")


def _refine_output(prompt: str, round_no: int) -> str:
    m = _DOC_RE.search(prompt)
    if not m:
        return "Write something."
    topic, i = m.group(1), int(m.group(2))
    if topic == "bank":
        return refine_instruction(i)
    return f"Describe what happened with {topic} in report {i}, draft {round_no}."  # reads as an instruction


class RefineFake(SlowFake):
    """The refiner sees the round as its sampling seed (refine.rewrite_options)."""

    round_no = 0

    def generate(self, prompts, params):
        self.round_no = params.seed
        return super().generate(prompts, params)


def refine_model(sleep: float = 0.0) -> FakeModel:
    model = RefineFake(
        "fake-eval",
        generate_fn=lambda prompt: _refine_output(prompt, model.round_no),
        label_fn=lambda prompt: {"good": 1.0, "flawed": 1.0, "bad": 1.0},
        loglik_fn=lambda prompt, cont: (-3.0 + _gain(_instruction_in(prompt))) if prompt else -3.0,
        sleep=sleep,
    )
    return model


class TopicEmbedder:
    """Deterministic fake embedder (as in tests/test_diversify.py): same topic word, nearly the same vector."""

    name = "topic-fake"

    def __init__(self, sleep: float = 0.0):
        self.sleep = sleep

    def encode(self, texts, batch_size=128, progress=False):
        time.sleep(self.sleep)
        out = []
        for t in texts:
            v = np.array([1.0 if w in t.lower() else 0.0 for w in TOPICS]) + 0.01 * (len(t) % 7) + 0.001
            out.append(v / np.linalg.norm(v))
        return np.array(out, dtype=np.float32)


# ---------------------------------------------------------------------------------------------------------------------
# The tests' side
# ---------------------------------------------------------------------------------------------------------------------
WAIT = 90  # seconds a worker may take to reach a point (imports and the language detector are slow on a busy CPU)


class Worker:
    """This script in a process of its own; its stdout lines are collected by a thread."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *map(str, args)],
                                     cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines: list[str] = []
        self.closed = False  # stdout reached its end
        self._q: queue.Queue[str | None] = queue.Queue()
        self._err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self._err.extend(self.proc.stderr), daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def stderr(self) -> str:
        return "".join(self._err)[-3000:]

    def wait_for(self, prefix: str, timeout: float = WAIT) -> str:
        """Block until a line starting with `prefix` arrives; AssertionError (with stderr) if the worker exits first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise AssertionError(f"worker did not say {prefix!r} within {timeout} s; said {self.lines[-5:]}")
            if line is None:
                self.closed = True
                self.proc.wait(10)
                raise AssertionError(f"worker exited ({self.proc.returncode}) before {prefix!r}: {self.stderr()}")
            self.lines.append(line)
            if line.startswith(prefix):
                return line

    def kill(self) -> None:
        """SIGKILL this very process (by its pid) and reap it; then collect what it printed."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        while not self.closed:
            try:
                line = self._q.get(timeout=10)
            except queue.Empty:
                break
            if line is None:
                self.closed = True
            else:
                self.lines.append(line)

    def finish(self, timeout: float = WAIT) -> dict:
        """Wait for the end of the stage; its stats."""
        line = self.wait_for("FINISHED", timeout)
        assert self.proc.wait(30) == 0, self.stderr()
        return json.loads(line.split(" ", 1)[1])

    def write_seconds(self) -> list[float]:
        return [float(line.split()[2]) for line in self.lines if line.startswith("WRITE ")]


# ---------------------------------------------------------------------------------------------------------------------
# The worker
# ---------------------------------------------------------------------------------------------------------------------
def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def pause_forever() -> None:
    say("PAUSED")
    time.sleep(600)
    os._exit(3)  # never reached in the tests: they kill us first


def install_write_hooks(pause_write: int | None) -> dict:
    """Count store.write calls (say WRITE n after each commit); pause inside the `pause_write`-th one, or inside the
    next one after state['pause_next'] is set."""
    from xinstruct.store import Store

    state = {"n": 0, "pause_next": False}
    original = Store.write

    def write(self, fn, *, retries=30):
        state["n"] += 1
        n = state["n"]
        pause = pause_write == n or state["pause_next"]

        def wrapped(tx):
            result = fn(tx)
            if pause:
                pause_forever()
            return result

        start = time.perf_counter()
        result = original(self, wrapped, retries=retries)
        say(f"WRITE {n} {time.perf_counter() - start:.4f}")  # seconds, waiting for the file included
        return result

    Store.write = write
    return state


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["generate", "refine", "diversify", "export", "decide", "migrate", "open"])
    ap.add_argument("db")
    ap.add_argument("--sleep", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--pause-write", type=int)
    ap.add_argument("--out")
    ap.add_argument("--format", default="jsonl")
    ap.add_argument("--shard-rows", type=int, default=500_000)
    ap.add_argument("--pause-rename", type=int)
    ap.add_argument("--user")
    ap.add_argument("--langs", default="sw")
    ap.add_argument("--pause-decision", type=int)
    ap.add_argument("--limit", type=int, default=1_000_000)
    args = ap.parse_args(argv)

    from xinstruct.store import Store

    state = install_write_hooks(args.pause_write)
    if args.mode in ("migrate", "open"):
        say("READY")
        store = Store(args.db, busy_timeout=120, migrate=False)
        stats = {"applied": store.migrate()}
        say("FINISHED " + json.dumps(stats))
        return
    store = Store(args.db, busy_timeout=60)

    if args.mode == "generate":
        from xinstruct import generate, langid

        langid.detect(["Summarize the news report for a reader."])  # build the detector before the clock starts
        model = generator_model(args.sleep)
        say("READY")
        stats = generate.run(store, generate.GenerateConfig(batch_size=args.batch, progress=False), model=model)
    elif args.mode == "refine":
        from xinstruct import refine

        model = refine_model(args.sleep)
        say("READY")
        stats = refine.run(store, refine.RefineConfig(batch_size=args.batch, rounds=3, evaluator="gain", progress=False),
                           model=model, refiner=model)
    elif args.mode == "diversify":
        from xinstruct import diversify

        say("READY")
        stats = diversify.run(store, diversify.DiversifyConfig(target=3, k=3, progress=False),
                              embedder=TopicEmbedder(args.sleep))
    elif args.mode == "export":
        from xinstruct import export

        if args.pause_rename:
            renames = {"n": 0}
            original_replace = Path.replace

            def replace(self, target):
                if self.name.endswith(".partial"):
                    renames["n"] += 1
                    if renames["n"] == args.pause_rename:
                        pause_forever()  # the .partial file is complete on disk, the final name not there yet
                return original_replace(self, target)

            Path.replace = replace
        say("READY")
        res = export.export(store, export.ExportConfig(out=Path(args.out), format=args.format, status="all",
                                                       shard_rows=args.shard_rows))
        stats = {"rows": res.rows, "content_hash": res.content_hash}
    else:  # decide
        from xinstruct import review
        from xinstruct.auth import User

        user = User(args.user, "reviewer", tuple(args.langs.split(",")))
        actions = ["accept", "edit", "reject", "accept", "skip"]
        say("READY")
        done = 0
        while done < args.limit:
            item = review.next_item(store, user)
            if item is None:
                break
            action = actions[done % len(actions)]
            rid = review.request_id_for(user, item["id"], action, "crash")
            kw = {}
            if action == "edit":
                kw["instruction"] = (item["instruction"] or "") + " (edited by worker)"
            if action == "reject":
                kw["reason"] = "poor_quality"
            if args.pause_decision == done + 1:
                state["pause_next"] = True
            say(f"INTENT {rid}")
            did = review.record_decision(store, item["id"], user, action, request_id=rid, **kw)
            say(f"DONE {rid} {did}")
            done += 1
        stats = {"decisions": done}
    say("FINISHED " + json.dumps(stats, default=str))


if __name__ == "__main__":
    main()
