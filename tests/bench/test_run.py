"""bench/run: figures printed beside their targets, the targets' summary, and the CPU hogs it
starts beside a bench and always stops."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "run"


@pytest.fixture(scope="module")
def run() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("bench_run", str(RUN))
    spec = importlib.util.spec_from_loader("bench_run", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


def annotated(run: ModuleType, bench: str, line: str) -> str:
    return str(run.with_target(run.judge(bench, line), line))


BESIDE_THEIR_TARGET = [
    ("daemon", "daemon CPU [10000 schedules @ 60s]: 31 % of one core", "≤ 25 %: not met"),
    ("daemon-hogs", "lateness p99 [10000 schedules @ 60s, 2 CPU hogs]: 20.1 ms", "< 25 ms: met"),
    # The quiet target is not the one with hogs beside the daemon.
    ("daemon", "lateness p99 [10000 schedules @ 60s]: 20.1 ms", "< 5 ms: not met"),
    (
        "engine",
        "engine throughput [1000 calls, concurrency 20, SQLite store]: 9 calls/s (ratio 0.55 vs aiohttp)",
        "≥ 0.5: met",
    ),
    # Judged on SQLite, the default store.
    (
        "store",
        "store batched add_results [500 per transaction]: SQLite 8,768 results/s | PostgreSQL 25,047 results/s",
        "≥ 20,000 results/s: not met",
    ),
    ("cluster", "cluster duplicates [10000 monitors every 60s, 3 agents]: 0", "= 0: met"),
]


@pytest.mark.parametrize(("bench", "line", "target"), BESIDE_THEIR_TARGET)
def test_a_figure_with_a_target_is_printed_beside_it(
    run: ModuleType, bench: str, line: str, target: str
) -> None:
    assert annotated(run, bench, line) == f"{line} (target {target})"


def test_store_rows_are_judged_on_their_sqlite_column(run: ModuleType) -> None:
    """store_bench.py prints `  label   SQLite … | PostgreSQL …` rows; bench/run names them."""
    translate = run.StoreTranslator()
    rows = [
        "  bytes on disk per result (realistic, ~1.5 KB body)    SQLite 617 B | PostgreSQL 675 B",
        "  bytes on disk per result (small, no body)             SQLite 223 B | PostgreSQL 306 B",
        "  stats() over 30 days (1,000,000 results, 720 hours)   SQLite 84.6 ms | PostgreSQL 225.6 ms",
    ]
    assert [annotated(run, "store", translate(row)) for row in rows] == [
        "store bytes on disk per result [realistic, ~1.5 KB body]: SQLite 617 B | PostgreSQL 675 B"
        " (target ≤ 350 B: not met)",
        "store bytes on disk per result [small, no body]: SQLite 223 B | PostgreSQL 306 B"
        " (target ≤ 250 B: met)",
        "store stats() over 30 days [1,000,000 results, 720 hours]: SQLite 84.6 ms"
        " | PostgreSQL 225.6 ms (target < 100 ms: met)",
    ]


def test_a_figure_at_another_size_says_which_size_the_target_is_for(run: ModuleType) -> None:
    line = "daemon CPU [1000 schedules @ 10s]: 16 % of one core"
    assert annotated(run, "daemon", line) == (
        f"{line} (target ≤ 25 %: met here; the target is for 10000 schedules @ 60s)"
    )


def test_figures_without_a_target_are_left_alone(run: ModuleType) -> None:
    for bench, line in [
        ("daemon", "RSS [1000 schedules @ 10s]: 84.4 MiB (peak 84.4 MiB)"),
        ("peers", "workflow per iteration [N=200, apimd]: 1.90 ms (ratio 5.68 vs newman)"),
        ("daemon", "lateness max [1000 schedules @ 10s]: unavailable (no schedule.fired event)"),
        ("perrun", "per-run CPU [100 monitors]: 0.713 ms (×1.00 vs 100; rounds 0.713)"),
        # Its CPU is not the first paint (it was judged in seconds: "233 s, not met").
        ("tui", "tui first paint CPU [10,000 monitors]: 233 ms"),
        # The CPU of each write is not the writes' rate ("61.9 results/s, not met").
        (
            "store",
            "store batched add_results, CPU per result [this process]: SQLite 61.9 µs"
            " | PostgreSQL 75.7 µs",
        ),
        (
            "store",
            "store stats() over 30 days, its CPU [this process]: SQLite 28.8 ms"
            " | PostgreSQL 24.4 ms",
        ),
    ]:
        assert annotated(run, bench, line) == line


def test_the_summary_has_every_target_with_its_figure_or_why_not(run: ModuleType) -> None:
    judged = [
        run.judge("daemon", "daemon CPU [10000 schedules @ 60s]: 31 % of one core"),
        run.judge("peers", "workflow per iteration [N=200, apimd]: 1.20 ms (ratio 2.10 vs stepci)"),
    ]
    lines = run.summary(judged, ["daemon", "peers"])
    assert len(lines) == len(run.TARGETS) + 1
    assert lines[0] == "daemon CPU, quiet [10000 schedules @ 60s]: 31 % (target ≤ 25 %: not met)"
    assert "lateness p99, quiet: no figure (daemon; target < 5 ms)" in lines
    assert "TUI first paint: not run (tui; target < 0.6 s)" in lines
    assert any(line.endswith(": 2.10 (target ≥ 2: met)") for line in lines)
    assert lines[-1].startswith("# targets: 1 met, 1 not met at their size")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def spin_then_fail(run: ModuleType, capsys: pytest.CaptureFixture[str], pids: list[int]) -> None:
    with run.hogs(2):
        pids += [int(p) for p in capsys.readouterr().out.split(":")[1].split(",")]
        assert len(pids) == 2
        before = [cpu_ticks(pid) for pid in pids]
        time.sleep(0.5)
        assert all(cpu_ticks(pid) > ticks for pid, ticks in zip(pids, before, strict=True))
        raise RuntimeError("the bench failed")


def test_hogs_spin_while_the_block_runs_and_are_stopped_after_an_error(
    run: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="the bench failed"):
        spin_then_fail(run, capsys, pids)
    assert not any(alive(pid) for pid in pids)


@pytest.fixture
def fake_interpreter(tmp_path: Path) -> Path:
    """Stands in for the bench's interpreter: real python for bench/run's own `-c` probe, and
    for the bench itself whatever the test's BENCH_SHIM says (a real process either way)."""
    shim = tmp_path / "python"
    shim.write_text(
        f'#!/bin/sh\n[ "$1" = "-c" ] && exec {sys.executable} "$@"\nexec sh -c "$BENCH_SHIM"\n'
    )
    shim.chmod(0o755)
    return shim


def start_run(interpreter: Path, shim: str) -> subprocess.Popen[str]:
    env = dict(os.environ, APIMD_BENCH_PYTHON=str(interpreter), BENCH_SHIM=shim)
    return subprocess.Popen(
        [sys.executable, str(RUN), "--quick", "--only", "daemon-hogs"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def hog_pids(process: subprocess.Popen[str]) -> list[int]:
    assert process.stdout is not None
    for line in process.stdout:
        if "CPU hog process(es) beside this bench:" in line:
            return [int(p) for p in line.split(":")[1].split(",")]
    raise AssertionError("bench/run never started its hogs")


def test_bench_run_stops_the_hogs_and_the_bench_on_sigterm(fake_interpreter: Path) -> None:
    process = start_run(fake_interpreter, "echo bench $$; exec sleep 60")
    try:
        pids = hog_pids(process)
        assert all(alive(pid) for pid in pids)
        assert process.stdout is not None
        assert "# == daemon-hogs" in process.stdout.readline()
        bench = int(process.stdout.readline().split()[1])
        assert alive(bench)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 143
    finally:
        process.kill()
        process.communicate()
    assert not any(alive(pid) for pid in [*pids, bench])


def test_bench_run_stops_the_hogs_when_the_bench_fails(fake_interpreter: Path) -> None:
    figure = "lateness max [10000 schedules @ 60s]: 70 ms"
    process = start_run(fake_interpreter, f"echo '{figure}'; exit 3")
    pids = hog_pids(process)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert not any(alive(pid) for pid in pids)
    judged = "lateness max [10000 schedules @ 60s, 2 CPU hogs]: 70 ms (target < 50 ms: not met)"
    figures, targets = out.split("# == targets")
    assert judged in figures
    assert "# daemon-hogs: FAILED (exit 3)" in figures
    assert judged in targets.splitlines()


def test_the_header_says_how_fast_the_machine_is(run: ModuleType) -> None:
    line = run.machine()[-1]
    took = re.fullmatch(r"speed: bench/run's reference workload took ([\d.]+) ms of CPU .*", line)
    assert took is not None, line
    assert float(took.group(1)) > 0
