"""The orchestrator's handle on the load-generator processes (bench/loadgen.py)."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time

from .ocppj import DEFAULT_VERSION
from .stack import LOGS, ROOT


def shares(total: int, parts: int) -> list[int]:
    """`total` split into `parts` near-equal counts, larger ones first."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class Generators:
    """`workers` processes simulating CPs first..first+total-1 of the bench's cids between them."""

    def __init__(self, url: str, total: int, workers: int, tag: str, first: int = 0, ocpp: str = DEFAULT_VERSION):
        workers = max(1, min(workers, total))
        self.counts = shares(total, workers)
        self.processes: list[subprocess.Popen] = []
        self._answers: list[queue.Queue] = []
        LOGS.mkdir(parents=True, exist_ok=True)
        start = first
        for index, count in enumerate(self.counts):
            log = open(LOGS / f"loadgen-{tag}-{index}.log", "w")
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.loadgen", "--url", url, "--first", str(start), "--count", str(count),
                 "--ocpp", ocpp],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
            log.close()
            answers: queue.Queue = queue.Queue()
            threading.Thread(target=self._read, args=(process, answers), daemon=True).start()
            self.processes.append(process)
            self._answers.append(answers)
            start += count

    @staticmethod
    def _read(process: subprocess.Popen, answers: queue.Queue) -> None:
        for line in process.stdout:
            answers.put(json.loads(line))
        answers.put({"error": f"load generator exited ({process.wait()})"})

    def ask(self, commands: dict | list[dict], timeout: float) -> list[dict]:
        """Send one command to every worker (or commands[i] to worker i); one answer from each."""
        if isinstance(commands, dict):
            commands = [commands] * len(self.processes)
        for process, command in zip(self.processes, commands):
            process.stdin.write(json.dumps(command) + "\n")
            process.stdin.flush()
        deadline = time.monotonic() + timeout
        answers = []
        for answers_of_worker in self._answers:
            try:
                answers.append(answers_of_worker.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                answers.append({"error": f"no answer within {timeout:g}s"})
        for answer in answers:
            if "error" in answer:
                raise RuntimeError(answer["error"])
        return answers

    def status(self) -> dict:
        total: dict = {"open": 0, "closed": {}, "heartbeats": 0, "heartbeat_failures": 0}
        for answer in self.ask({"op": "status"}, timeout=30):
            total["open"] += answer["open"]
            total["heartbeats"] += answer["heartbeats"]
            total["heartbeat_failures"] += answer["heartbeat_failures"]
            for code, n in answer["closed"].items():
                total["closed"][code] = total["closed"].get(code, 0) + n
        return total

    def close(self) -> None:
        for process in self.processes:
            try:
                process.stdin.write('{"op": "exit"}\n')
                process.stdin.flush()
            except OSError:
                pass
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def merge_failures(answers: list[dict]) -> dict:
    total: dict = {}
    for answer in answers:
        for kind, n in answer.get("failures", {}).items():
            total[kind] = total.get(kind, 0) + n
    return total
