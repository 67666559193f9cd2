#!/usr/bin/env python3
"""Pools several `cargo bench-load` runs of one module into one estimate.

Each run writes every slice to target/bench-load/slices.csv; copy each
run's file aside, then: python3 benches/load/tools/pool_runs.py A.csv B.csv ...

Over the cycles of all runs that measured (a) `native`, (d) `lua` and (e)
`turnout_native`, it pools as the report pools one run: Envoy's CPU summed
over requests per variant, (e) - (a) and (d) - (a) in us/request, their
ratio and (e)/(a) in requests/s, each with a 90 % bootstrap interval
(5,000 resamples of whole cycles, seeded, so a rerun prints the same).
"""
import csv
import random
import sys

VARIANTS = ("native", "lua", "turnout_native")


def cycles_of(paths):
    cycles = []
    for path in paths:
        by_cycle = {}
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row["kept"] != "true":
                    continue
                by_cycle.setdefault(row["cycle"], {})[row["listener"]] = (
                    int(row["envoy_ns"]),
                    int(row["requests"]),
                    float(row["requests_per_second"]),
                )
        cycles += [c for c in by_cycle.values() if all(v in c for v in VARIANTS)]
    return cycles


def estimate(cycles):
    def us_per_request(v):
        return sum(c[v][0] for c in cycles) / sum(c[v][1] for c in cycles) / 1000

    a, d, e = (us_per_request(v) for v in VARIANTS)
    rps = sum(c["turnout_native"][2] for c in cycles) / sum(c["native"][2] for c in cycles)
    return (e - a, d - a, (e - a) / (d - a), rps)


def main():
    cycles = cycles_of(sys.argv[1:])
    if not cycles:
        sys.exit("no cycle with (a), (d) and (e) in " + " ".join(sys.argv[1:]))
    point = estimate(cycles)
    rng = random.Random(1)
    samples = [estimate([rng.choice(cycles) for _ in cycles]) for _ in range(5000)]
    print(f"{len(cycles)} cycles")
    names = ["(e) - (a) us/request", "(d) - (a) us/request", "((e) - (a)) / ((d) - (a))", "requests/s (e) / (a)"]
    for i, name in enumerate(names):
        values = sorted(s[i] for s in samples)
        low, high = values[int(0.05 * len(values))], values[int(0.95 * len(values))]
        print(f"{name}: {point[i]:.3f} ({low:.3f} - {high:.3f})")


if __name__ == "__main__":
    main()
