"""bench/report.py: the verdicts docs/benchmarks.md quotes come from it, so its arithmetic is checked here."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

REPORT = REPO / "bench" / "report.py"


def point(rnd: int, system: str, rps: float) -> str:
    # point ROUND SYSTEM RPS P50 P99 REQUESTS NON2XX SOCKET_ERRORS CPU_TICKS SECONDS EXPECT
    requests = int(rps * 10)
    return "\t".join(
        ["point", str(rnd), system, f"{rps:.2f}", "1.00ms", "2.00ms", str(requests), "0", "0", "1000", "10.0", "200"]
    )


def run_report(tmp_path, lines: list[str]) -> str:
    raw = tmp_path / "raw.tsv"
    raw.write_text("\n".join(lines) + "\n")
    out = subprocess.run([sys.executable, str(REPORT), str(raw)], capture_output=True, text=True, check=True)
    return out.stdout


def ratio_row(text: str, label: str) -> list[str]:
    row = next(line for line in text.splitlines() if line.startswith(f"| {label} ("))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_each_ratio_is_given_per_round_and_as_their_median(tmp_path):
    # One slow round of bare Pingora (round 2) drags its median down; the per-round ratios show it.
    bare = {1: 40000, 2: 30000, 3: 40000}
    cookie = {1: 33000, 2: 32000, 3: 34000}
    lines = [point(r, "bare-pingora", v) for r, v in bare.items()]
    lines += [point(r, "sidecar-cookie", v) for r, v in cookie.items()]
    text = run_report(tmp_path, lines)

    cells = ratio_row(text, "cookie session vs bare Pingora")
    # Ratio of medians: 33000 / 40000.
    assert cells[1] == "0.82x"
    # Per round: 0.825, 1.067, 0.85 -> median 0.85.
    assert cells[3] == "0.85x (0.82, 1.07, 0.85)"
    # The verdict stays on the ratio of medians, as the docs quote it.
    assert cells[4] == ">= 0.85x (not met on req/s)"


def test_rounds_one_system_missed_are_left_out_and_missing_systems_say_so(tmp_path):
    lines = [point(1, "bare-pingora", 40000), point(2, "bare-pingora", 40000), point(1, "sidecar-cookie", 36000)]
    text = run_report(tmp_path, lines)
    cells = ratio_row(text, "cookie session vs bare Pingora")
    assert cells[1] == "0.90x"
    assert cells[3] == "0.90x (0.90)"
    assert cells[4] == ">= 0.85x (met on req/s)"
    absent = ratio_row(text, "Redis session vs bare Pingora")
    assert absent[1:4] == ["n/a", "n/a", "n/a"]
