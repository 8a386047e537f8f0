#!/usr/bin/env python3
"""Draw docs/bench-throughput.png from `warren bench --baseline --output json` runs.

Each input file holds one JSON object printed by warren bench (mode e2e, with
--baseline). The chart shows consume throughput (jobs handled per second,
publishing at the same time) against the worker's concurrency, one line per
prefetch, Warren and bare amqp091-go side by side, their ratio, and the
client CPU per job of each (the figure a busy broker moves least).

    python3 scripts/bench-chart.py internal/bench/testdata/sweep/*.json -o docs/bench-throughput.png

Needs matplotlib: on Debian, apt-get install python3-matplotlib (then run it
with /usr/bin/python3).
"""
import argparse
import json
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(paths):
    runs = []
    for p in paths:
        with open(p) as f:
            r = json.load(f)
        if "baseline" not in r:
            sys.exit(f"{p}: no baseline: run warren bench with --baseline")
        runs.append(r)
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="warren bench --output json files")
    ap.add_argument("-o", "--output", default="docs/bench-throughput.png", help="PNG to write")
    ap.add_argument("--figure", default="consume_per_sec", help="JSON figure to plot (default consume_per_sec)")
    ap.add_argument("--title", default="", help="extra line for the title (the machine, the load)")
    args = ap.parse_args()

    runs = load(args.files)
    # series[prefetch][concurrency] = (warren, bare); cpu likewise
    series = defaultdict(dict)
    cpu = defaultdict(dict)
    for r in runs:
        series[r["prefetch"]][r["concurrency"]] = (r[args.figure], r["baseline"][args.figure])
        cpu[r["prefetch"]][r["concurrency"]] = (r.get("cpu_us_per_job", 0), r["baseline"].get("cpu_us_per_job", 0))
    concurrencies = sorted({c for s in series.values() for c in s})
    prefetches = sorted(series)

    fig, axes = plt.subplots(1, 4, figsize=(19, 4.8), gridspec_kw={"width_ratios": [1, 1, 0.8, 0.8]})
    ax_w, ax_b, ax_r, ax_c = axes
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    top = 0
    for i, p in enumerate(prefetches):
        cs = [c for c in concurrencies if c in series[p]]
        w = [series[p][c][0] for c in cs]
        b = [series[p][c][1] for c in cs]
        top = max(top, *w, *b)
        color = colors[i % len(colors)]
        ax_w.plot(cs, w, marker="o", color=color, label=f"prefetch {p}")
        ax_b.plot(cs, b, marker="s", linestyle="--", color=color, label=f"prefetch {p}")
        ax_r.plot(cs, [x / y if y else float("nan") for x, y in zip(w, b)], marker="o", color=color, label=f"prefetch {p}")
        ax_c.plot(cs, [cpu[p][c][0] for c in cs], marker="o", color=color, label=f"Warren, prefetch {p}")
        ax_c.plot(cs, [cpu[p][c][1] for c in cs], marker="s", linestyle="--", color=color, label=f"bare, prefetch {p}")

    unit = "jobs/s" if args.figure.endswith("_per_sec") else args.figure
    for ax, name in ((ax_w, "Warren"), (ax_b, "bare amqp091-go")):
        ax.set_title(name)
        ax.set_xscale("log", base=2)
        ax.set_xticks(concurrencies)
        ax.set_xticklabels([str(c) for c in concurrencies])
        ax.set_xlabel("concurrency (handlers)")
        ax.set_ylabel(f"{args.figure} ({unit})")
        ax.set_ylim(0, top * 1.1)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    ax_r.set_title("Warren / bare")
    ax_r.set_xscale("log", base=2)
    ax_r.set_xticks(concurrencies)
    ax_r.set_xticklabels([str(c) for c in concurrencies])
    ax_r.set_xlabel("concurrency (handlers)")
    ax_r.axhline(1.0, color="grey", linewidth=0.8)
    ax_r.axhline(0.9, color="red", linewidth=0.8, linestyle=":", label="0.9 target")
    ax_r.set_ylim(0.5, 1.5)
    ax_r.grid(True, alpha=0.3)
    ax_r.legend(loc="lower right", fontsize="small")
    ax_c.set_title("client CPU per job")
    ax_c.set_xscale("log", base=2)
    ax_c.set_xticks(concurrencies)
    ax_c.set_xticklabels([str(c) for c in concurrencies])
    ax_c.set_xlabel("concurrency (handlers)")
    ax_c.set_ylabel("µs of CPU per job (producer + consumer)")
    ax_c.set_ylim(0, None)
    ax_c.grid(True, alpha=0.3)
    ax_c.legend(loc="lower left", fontsize="x-small", ncol=2)

    r0 = runs[0]
    env = r0.get("environment", {})
    title = (f"warren bench --mode {r0['mode']}: {r0['jobs']:,} jobs of {r0['size']} B, {r0['queue_type']} queue, "
             f"{r0['producers']} producers, medians of {r0.get('rounds', 1)} round(s); "
             f"{env.get('broker_product', 'broker')} {env.get('broker_version', '?')}, {env.get('cpus', '?')} CPUs")
    if args.title:
        title += "\n" + args.title
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output} from {len(runs)} runs", file=sys.stderr)


if __name__ == "__main__":
    main()
