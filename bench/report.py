#!/usr/bin/env python3
"""Turn bench/run.sh's raw records into the markdown table and the target ratios.

Usage: report.py RAW_TSV [SYSTEM ...]   (systems in display order; default: order of appearance)

Raw records (tab-separated), written by run.sh:
  point  ROUND SYSTEM RPS P50 P99 REQUESTS NON2XX SOCKET_ERRORS CPU_TICKS SECONDS EXPECT
  mem    SYSTEM RSS_KB HWM_KB PROCESSES
  skip   SYSTEM REASON
Each figure in the table is the median over rounds of that figure (so the columns of one row may
come from different rounds). The ratio table also gives each ratio per round (the two systems of a
round ran minutes apart at most, under the same background load) and the median of those: one slow
round of one system moves the ratio of medians, the median of per-round ratios much less.
CPU µs/request = (utime + stime of the system's processes during the point) / requests;
CPU % = the same CPU time / the point's wall time (100 % = one core busy);
req/s per core = 1e6 / CPU µs per request: what the system would serve with its one core saturated,
the fair comparison when the load generator's side (wrk + upstream) is what limits req/s.
"""

import os
import statistics
import sys

CLK_TCK = os.sysconf("SC_CLK_TCK")

DESCRIPTION = {
    "upstream": "(a) upstream directly (nginx `return 200`)",
    "nginx": "(b) nginx plain reverse proxy",
    "bare-pingora": "(c) bare Pingora pass-through (built as the sidecar: LTO + PGO from its own profile)",
    "bare-pingora-plain": "(c°) bare Pingora pass-through, plain release build (no PGO): as Pingora ships",
    "bare-pingora-cookie": "(c') bare Pingora pass-through, sent (g)'s session Cookie header",
    "bare-pingora-nosteal": "(c*) bare Pingora on the no-steal runtime (the sidecar's), sent (g)'s cookie",
    "pingora-plumbing": "(c'') bare Pingora + the sidecar's runtime, timeouts and upstream header edits, no check, sent (g)'s cookie",
    "apache-moa": "(d) Apache + mod_auth_openidc, Bearer",
    "sidecar-bearer": "(e) sidecar, valid Bearer",
    "sidecar-401": "(f) sidecar, no token (401)",
    "sidecar-cookie": "(g) sidecar, session cookie (cookie store)",
    "sidecar-cookie-plain": "(g°) sidecar, session cookie (cookie store), plain release build (no PGO)",
    "sidecar-redis": "(h) sidecar, session (Redis store)",
    "apache-moa-cache": "(i) Apache + mod_auth_openidc, session (server cache)",
    "apache-moa-cookie": "(i) Apache + mod_auth_openidc, session (client cookie)",
}

# (numerator, denominator, target, what the target says)
RATIOS = [
    ("sidecar-bearer", "bare-pingora", 0.9, "Bearer path vs bare Pingora"),
    ("sidecar-bearer", "apache-moa", 5.0, "Bearer path vs Apache + mod_auth_openidc"),
    ("sidecar-401", "bare-pingora", 1.0, "401 path vs bare Pingora"),
    ("sidecar-cookie", "bare-pingora", 0.85, "cookie session vs bare Pingora"),
    ("sidecar-cookie", "apache-moa-cache", 4.0, "cookie session vs mod_auth_openidc session (server cache)"),
    ("sidecar-redis", "bare-pingora", 0.6, "Redis session vs bare Pingora"),
    # The same client request on both sides: the pass-through also receives (and forwards) the session cookie.
    ("sidecar-cookie", "bare-pingora-cookie", 0.85, "cookie session vs bare Pingora, same request"),
    ("sidecar-redis", "bare-pingora-cookie", 0.6, "Redis session vs bare Pingora, same request"),
    # No target (None): what the plumbing any proxy in the sidecar's place needs costs, and what is left for the
    # sidecar's own work (checks, sessions, access log, metrics).
    # The sidecar runs its one worker on Pingora's no-steal runtime; (c*) is bare Pingora on that runtime, so these
    # compare the same framework configuration with and without the sidecar's work.
    ("bare-pingora-nosteal", "bare-pingora-cookie", None, "no-steal runtime alone vs bare Pingora, same request"),
    ("sidecar-bearer", "bare-pingora-nosteal", None, "Bearer path vs bare Pingora on the sidecar's runtime"),
    ("sidecar-cookie", "bare-pingora-nosteal", None, "cookie session vs bare Pingora on the sidecar's runtime, same request"),
    ("sidecar-redis", "bare-pingora-nosteal", None, "Redis session vs bare Pingora on the sidecar's runtime, same request"),
    ("pingora-plumbing", "bare-pingora-nosteal", None, "plumbing alone vs bare Pingora on the same runtime, same request"),
    ("sidecar-cookie", "pingora-plumbing", None, "cookie session vs Pingora with the same plumbing"),
    ("sidecar-redis", "pingora-plumbing", None, "Redis session vs Pingora with the same plumbing"),
    # Profile-guided optimization: the sidecar ships built with it (scripts/build-release.sh), and (c) is bare Pingora
    # built the same way from its own profile. These show each build's share, and the comparison with Pingora as it
    # ships (a plain release build).
    ("sidecar-cookie", "bare-pingora-plain", None, "cookie session vs bare Pingora as a plain release build (no PGO)"),
    ("sidecar-cookie-plain", "bare-pingora-plain", None, "cookie session vs bare Pingora, both plain release builds (no PGO)"),
    ("sidecar-cookie", "sidecar-cookie-plain", None, "PGO's gain for the sidecar (cookie session)"),
    ("bare-pingora", "bare-pingora-plain", None, "PGO's gain for bare Pingora"),
]


def to_ms(text: str) -> float:
    """wrk prints latencies as 657.00us, 1.20ms, 1.01s, 2.00m."""
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    raise ValueError(f"unknown latency unit in {text!r}")


def round_ratios(num: list[dict], den: list[dict]) -> list[float]:
    """num / den req/s for each round both systems ran in, in round order."""
    by_round = {p["round"]: p["rps"] for p in den}
    return [p["rps"] / by_round[p["round"]] for p in num if by_round.get(p["round"], 0) > 0]


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    points: dict[str, list[dict]] = {}
    mem: dict[str, tuple[int, int, int]] = {}
    skips: dict[str, str] = {}
    order: list[str] = list(sys.argv[2:])
    with open(sys.argv[1]) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            kind = fields[0]
            if kind == "point":
                _, rnd, system, rps, p50, p99, reqs, non2xx, sockerr, ticks, secs, expect = fields
                reqs_n = int(reqs)
                cpu_s = int(ticks) / CLK_TCK
                points.setdefault(system, []).append({
                    "round": int(rnd),
                    "rps": float(rps),
                    "p50": to_ms(p50),
                    "p99": to_ms(p99),
                    "cpu_us": cpu_s * 1e6 / reqs_n if reqs_n else float("nan"),
                    "cpu_pct": 100.0 * cpu_s / float(secs),
                    # A point is clean when every answer had the expected class and no socket failed.
                    "clean": int(sockerr) == 0 and (int(non2xx) == 0 if expect == "200" else int(non2xx) == reqs_n),
                })
            elif kind == "mem":
                mem[fields[1]] = (int(fields[2]), int(fields[3]), int(fields[4]))
            elif kind == "skip":
                skips[fields[1]] = fields[2]
            else:
                continue
            if fields[1 if kind != "point" else 2] not in order:
                order.append(fields[1 if kind != "point" else 2])

    med = {s: {k: statistics.median(p[k] for p in ps) for k in ("rps", "p50", "p99", "cpu_us", "cpu_pct")}
           for s, ps in points.items()}

    print("| system | req/s | p50 ms | p99 ms | CPU µs/req | CPU % of a core | req/s per core | RSS MB | peak RSS MB | rounds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for s in order:
        name = DESCRIPTION.get(s, s)
        if s in med:
            m = med[s]
            rss, hwm, nproc = mem.get(s, (0, 0, 0))
            rounds = len(points[s])
            dirty = sum(1 for p in points[s] if not p["clean"])
            note = f"{rounds}" + (f" ({dirty} with unexpected statuses or socket errors)" if dirty else "")
            procs = f" ({nproc} processes)" if nproc > 1 else ""
            print(f"| {name} | {m['rps']:,.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['cpu_us']:.1f} | "
                  f"{m['cpu_pct']:.0f} | {1e6 / m['cpu_us']:,.0f} | {rss / 1024:.1f}{procs} | {hwm / 1024:.1f} | {note} |")
        elif s in skips:
            print(f"| {name} | skipped: {skips[s]} | | | | | | | | |")

    print()
    print("| ratio | req/s | req/s per core (CPU) | req/s per round: median (each round) | target |")
    print("|---|---:|---:|---:|---:|")
    for num, den, target, what in RATIOS:
        if num in med and den in med and med[den]["rps"] > 0:
            r = med[num]["rps"] / med[den]["rps"]
            c = med[den]["cpu_us"] / med[num]["cpu_us"]
            per_round = round_ratios(points[num], points[den])
            rounds = (f"{statistics.median(per_round):.2f}x ({', '.join(f'{x:.2f}' for x in per_round)})"
                      if per_round else "n/a")
            if target is None:
                goal = "(reference)"
            else:
                goal = f">= {target}x ({'met' if r >= target else 'not met'} on req/s)"
            print(f"| {what} ({num} / {den}) | {r:.2f}x | {c:.2f}x | {rounds} | {goal} |")
        else:
            goal = "(reference)" if target is None else f">= {target}x"
            print(f"| {what} ({num} / {den}) | n/a | n/a | n/a | {goal} |")
    if "sidecar-bearer" in med and "bare-pingora" in med:
        extra = med["sidecar-bearer"]["cpu_us"] - med["bare-pingora"]["cpu_us"]
        print(f"\nCPU the sidecar adds per Bearer request over bare Pingora: {extra:.1f} µs")
    # The plumbing runs on the sidecar's (no-steal) runtime: its cost is measured against bare Pingora on that runtime.
    base = "bare-pingora-nosteal" if "bare-pingora-nosteal" in med else "bare-pingora-cookie"
    if "sidecar-cookie" in med and "pingora-plumbing" in med and base in med:
        plumbing = med["pingora-plumbing"]["cpu_us"] - med[base]["cpu_us"]
        own = med["sidecar-cookie"]["cpu_us"] - med["pingora-plumbing"]["cpu_us"]
        print(f"CPU per cookie-session request over bare Pingora ({base}, same request): {plumbing:.1f} µs plumbing "
              f"(timeouts, header edits) + {own:.1f} µs the sidecar's own work")
    return 0


if __name__ == "__main__":
    sys.exit(main())
