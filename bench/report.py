#!/usr/bin/env python3
"""Turns one bench/run.sh output directory into Markdown tables.

Ratios are computed within each round (the machine is shared and noisy) and then the
median over rounds is shown, with [min-max].
usage: report.py OUT_DIR [--rates "1000 3000"] [--conc 32]
"""
import argparse, glob, json, os, re, statistics

TARGETS = ["direct", "nginx", "flowgate"]
# Closed loop only: both proxies with 2 workers.
WIDE = ["nginx2", "flowgate2"]
# flowgate answering from its cache: L1 hits (1 and 2 workers), L2 and L3 hits.
CACHE = ["cache", "cache2", "l2", "l3"]

def load_sample(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return {}

def wrk(path):
    text = open(path).read()
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    req = int(m.group(1)) if m else 0
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    errors = sum(int(x) for x in re.findall(r"(?:Non-2xx or 3xx responses|Socket errors:.*?timeout)\s*:?\s*(\d+)", text))
    def lat(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", text, re.M)
        if not m:
            return None
        v, u = float(m.group(1)), m.group(2)
        return v / 1000 if u == "us" else v * 1000 if u == "s" else v
    return {"requests": req, "rps": float(rps.group(1)) if rps else 0.0, "p50": lat(50), "p99": lat(99), "errors": errors}

def oha(path):
    text = open(path).read()
    j = json.loads(text[text.index("{"):])
    lp = j.get("latencyPercentiles", {})
    codes = j.get("statusCodeDistribution", {})
    ok = int(codes.get("200", 0))
    # oha cancels the requests still in flight when its -z deadline passes: not an error of
    # the target.
    errs = {k: v for k, v in j.get("errorDistribution", {}).items() if k != "aborted due to deadline"}
    total = sum(int(v) for v in codes.values()) + sum(int(v) for v in errs.values())
    ms = lambda k: lp[k] * 1000 if lp.get(k) is not None else None
    return {"requests": total, "rps": j["summary"]["requestsPerSec"], "p50": ms("p50"), "p90": ms("p90"),
            "p99": ms("p99"), "p999": ms("p99.9"), "errors": total - ok}

def med(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return (statistics.median(xs), min(xs), max(xs))

def fmt(t, digits=3, unit=""):
    if t is None:
        return "-"
    m, lo, hi = t
    f = f"{{:.{digits}f}}"
    if abs(hi - lo) < 10 ** -digits:
        return f.format(m) + unit
    return f"{f.format(m)}{unit} [{f.format(lo)}–{f.format(hi)}]"

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--rates", default="1000 3000")
    ap.add_argument("--conc", default="32")
    a = ap.parse_args()
    rounds = sorted({int(re.search(r"-r(\d+)-", os.path.basename(p)).group(1)) for p in glob.glob(f"{a.out}/*-r*-closed.out")})
    phases = ["closed"] + [f"q{q}" for q in a.rates.split()]
    data = {}
    for t in TARGETS + WIDE + CACHE:
        for r in rounds:
            for ph in phases:
                base = f"{a.out}/{t}-r{r}-{ph}"
                if not os.path.exists(base + ".out"):
                    continue
                d = wrk(base + ".out") if ph == "closed" else oha(base + ".out")
                s = load_sample(base + ".sample.json")
                d["cpu_us"] = s.get("cpu_s", 0) * 1e6 / d["requests"] if d["requests"] else None
                d["user_us"] = s["user_s"] * 1e6 / d["requests"] if d["requests"] and "user_s" in s else None
                d["rss"] = s.get("rss_peak_mib")
                data[(t, r, ph)] = d

    def per_round(fn):
        return med([fn(r) for r in rounds])

    print(f"Rounds: {len(rounds)}; values are the median over rounds [min–max]; ratios are taken within a round.\n")
    print(f"### Closed loop, c={a.conc} (wrk -t2)\n")
    print("| target | req/s | vs nginx | vs direct | p50 ms | p99 ms | CPU µs/req | peak RSS MiB | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    def closed_row(t, anchor):
        g = lambda k: per_round(lambda r: data.get((t, r, "closed"), {}).get(k))
        vs = lambda other: per_round(lambda r: data[(t, r, "closed")]["rps"] / data[(other, r, "closed")]["rps"] if (t, r, "closed") in data and (other, r, "closed") in data else None)
        print(f"| {t} | {fmt(g('rps'), 0)} | {fmt(vs(anchor), 2, 'x')} | {fmt(vs('direct'), 2, 'x')} | {fmt(g('p50'))} | {fmt(g('p99'))} | {fmt(g('cpu_us'), 1)} | {fmt(g('rss'), 1)} | {fmt(g('errors'), 0)} |")
    for t in TARGETS + WIDE:
        closed_row(t, "nginx2" if t in WIDE else "nginx")
    print("\n(`vs nginx` compares flowgate2 with nginx2: 2 workers each.)")
    def rate_table(q, title, targets, rss):
        """One fixed-rate table; with or without the peak RSS column."""
        ph = f"q{q}"
        print(f"\n### Fixed rate {q} req/s, {title}, ms\n")
        print("| target | achieved/s | p50 | p90 | p99 | p99.9 | Δp50 vs direct | Δp99 vs direct | CPU µs/req |" + (" peak RSS MiB |" if rss else "") + " errors |")
        print("|---|---|---|---|---|---|---|---|---|" + ("---|" if rss else "") + "---|")
        for t in targets:
            g = lambda k: per_round(lambda r: data.get((t, r, ph), {}).get(k))
            d = lambda k: per_round(lambda r: data[(t, r, ph)][k] - data[("direct", r, ph)][k] if (t, r, ph) in data and ("direct", r, ph) in data and data[(t, r, ph)][k] is not None else None)
            print(f"| {t} | {fmt(g('rps'), 0)} | {fmt(g('p50'))} | {fmt(g('p90'))} | {fmt(g('p99'))} | {fmt(g('p999'))} | {fmt(d('p50'))} | {fmt(d('p99'))} | {fmt(g('cpu_us'), 1)} |" + (f" {fmt(g('rss'), 1)} |" if rss else "") + f" {fmt(g('errors'), 0)} |")
    for q in a.rates.split():
        rate_table(q, "open loop (oha --latency-correction)", TARGETS, True)
    print("\n### flowgate against the goals (medians over rounds)\n")
    def ratio(ph, k, fg="flowgate", ng="nginx"):
        return per_round(lambda r: data[(fg, r, ph)][k] / data[(ng, r, ph)][k] if (fg, r, ph) in data and (ng, r, ph) in data and data[(ng, r, ph)][k] else None)
    def delta_us(ph, k):
        return per_round(lambda r: 1000 * (data[("flowgate", r, ph)][k] - data[("direct", r, ph)][k]) if ("flowgate", r, ph) in data and ("direct", r, ph) in data else None)
    rss = med([data[("flowgate", r, ph)]["rss"] for r in rounds for ph in phases if ("flowgate", r, ph) in data])
    print("| goal | measured |")
    print("|---|---|")
    print(f"| throughput ≥ 0.9× nginx (closed loop c={a.conc}) | {fmt(ratio('closed', 'rps'), 2, 'x')} |")
    print(f"| added p50 vs direct at 1000 req/s ≤ 80 µs | {fmt(delta_us('q1000', 'p50'), 0, ' µs')} |")
    print(f"| added p99 vs direct at 1000 req/s ≤ 200 µs | {fmt(delta_us('q1000', 'p99'), 0, ' µs')} |")
    print(f"| CPU per request ≤ 1.2× nginx (closed loop) | {fmt(ratio('closed', 'cpu_us'), 2, 'x')} |")
    print(f"| CPU per request ≤ 1.2× nginx (1000 req/s) | {fmt(ratio('q1000', 'cpu_us'), 2, 'x')} |")
    print(f"| 2 workers each: throughput flowgate2/nginx2 | {fmt(ratio('closed', 'rps', 'flowgate2', 'nginx2'), 2, 'x')} |")
    print(f"| 2 workers each: CPU per request flowgate2/nginx2 | {fmt(ratio('closed', 'cpu_us', 'flowgate2', 'nginx2'), 2, 'x')} |")
    print(f"| peak RSS under load ≤ 60 MB | {fmt(rss, 1, ' MiB')} |")

    if not any(t in CACHE for (t, _, _) in data):
        return
    print(f"\n## Cache hits (issue 3)\n")
    print(f"### Closed loop, c={a.conc} (wrk -t2): L1 hits\n")
    print("| target | req/s | vs nginx | vs direct | p50 ms | p99 ms | CPU µs/req | peak RSS MiB | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t, anchor in [("nginx", "nginx"), ("cache", "nginx"), ("nginx2", "nginx2"), ("cache2", "nginx2")]:
        closed_row(t, anchor)
    print("\n(`cache` has 1 worker and is compared with nginx; `cache2` has 2 and is compared with nginx2.)")
    for q in a.rates.split():
        rate_table(q, "open loop: hits from each tier", ["direct", "nginx", "cache", "l2", "l3"], False)
    flight = load_sample(f"{a.out}/flight.json")
    stats = load_sample(f"{a.out}/cache-stats.json")
    print("\n### The cache against the goals (medians over rounds)\n")
    print("| goal | measured |")
    print("|---|---|")
    print(f"| L1-hit throughput ≥ 1.5× nginx (closed loop c={a.conc}, 1 worker each) | {fmt(ratio('closed', 'rps', 'cache', 'nginx'), 2, 'x')} |")
    print(f"| L1-hit throughput, 2 workers each (cache2/nginx2) | {fmt(ratio('closed', 'rps', 'cache2', 'nginx2'), 2, 'x')} |")
    g = lambda t, k, ph="closed": per_round(lambda r: data.get((t, r, ph), {}).get(k))
    print(f"| hit-path CPU per request ≤ 12 µs (closed loop, 1 worker) | {fmt(g('cache', 'cpu_us'), 1, ' µs')} |")
    print(f"| hit-path CPU per request, 2 workers | {fmt(g('cache2', 'cpu_us'), 1, ' µs')} |")
    print(f"| of which user space (flowgate's own work; the rest is the kernel's loopback TCP), 1 worker | {fmt(g('cache', 'user_us'), 1, ' µs')} |")
    print(f"| user-space CPU per request, nginx proxy / nginx static (direct) | {fmt(g('nginx', 'user_us'), 1, ' µs')} / {fmt(g('direct', 'user_us'), 1, ' µs')} |")
    for t, name in [("cache", "L1"), ("l2", "L2 (Redis)"), ("l3", "L3 (disk)")]:
        print(f"| {name} hit latency at 1000 req/s: p50 / p99 / p99.9 | {fmt(g(t, 'p50', 'q1000'))} / {fmt(g(t, 'p99', 'q1000'))} / {fmt(g(t, 'p999', 'q1000'))} ms |")
    print(f"| single-flight: upstream requests for 100 identical concurrent misses = 1 | {flight.get('upstream_requests', '-')} |")
    if stats:
        print(f"| hit rate over the run (cache, L1) | {stats.get('hit_rate', 0) * 100:.3f}% |")

if __name__ == "__main__":
    main()
