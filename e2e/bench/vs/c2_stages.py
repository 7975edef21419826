#!/usr/bin/env python3
"""Where the C2 samples of bench_vs wait: stage by stage, from the traces.

    KRAPPY_CLUSTER_TRACE=$TMPDIR/tr VS_LAT_TRACE=$TMPDIR/lat \\
        build/release/bench/bench_vs --reps 1 --workloads C --only krappy3
    e2e/bench/vs/c2_stages.py $TMPDIR/tr $TMPDIR/lat [N] [--dirty FILE]

PREFIX.<node> are the nodes' traces (src/cluster/trace.h), LAT the events'
"n due arrived" lines (bench_vs, $VS_LAT_TRACE); all on CLOCK_MONOTONIC. Each
event is found in the leader's entry whose topic offsets hold it, and its
latency split into: arrival at the leader to submit (the client's send, the
loop reading it, write batching), submit to append (the raft thread waking),
the wait for a majority's disks (the leader's own write, or the follower
acknowledgement that made the majority), commit to the loop, the store, and
the answer to the consumer. Prints, for the p99 and p90 tails and for all
samples, how often each stage was the largest and its mean; with N, the N
slowest samples one by one.
"""
import bisect
import collections
import glob
import sys

STAGES = ["arrival->submit", "submit->append", "majority: leader's disk",
          "majority: a follower", "commit->loop", "loop->applied",
          "applied->consumer"]


def read_trace(path):
    entries, notes = {}, []
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                if "snapshot" in line:
                    notes.append(line.strip())
                continue
            try:
                v = [int(x) for x in line.split()]
            except ValueError:
                continue  # a line cut short by a kill
            if len(v) == 11:
                entries[v[0]] = v[1:]
    return entries, notes


def split(entry, due, arrived):
    sub, app, stored, ack1, ack2, commit, taken, applied = entry[:8]
    never = 1 << 62
    votes = sorted([(stored or never, "L"), (ack1 or never, "F"), (ack2 or never, "F")])
    wait = commit - app
    by_leader = votes[1][1] == "L"
    return [sub - due, app - sub, wait if by_leader else 0, 0 if by_leader else wait,
            taken - commit, applied - taken, arrived - applied]


def pct(v, p):
    return v[min(len(v) - 1, int(len(v) * p))]


def log_writes(traces, lo, hi, dirty):
    """The log writes (append -> stored) that started within [lo, hi] ns."""
    per, slow_at = {}, collections.Counter()
    for path, (entries, _) in traces.items():
        w = [(v[1], (v[2] - v[1]) / 1e6) for v in entries.values()
             if v[1] and v[2] and lo <= v[1] <= hi]
        per[path] = w
        for i, v in entries.items():
            if v[1] and v[2] and lo <= v[1] <= hi and v[2] - v[1] > 10e6:
                slow_at[i] += 1
    every = [w for ws in per.values() for w in ws]
    for name, ws in list(per.items()) + [("all nodes", every)]:
        d = sorted(x[1] for x in ws)
        if d:
            print("log writes, %s: %d, p50 %.2f p99 %.2f max %.1f ms, >10 ms %d, >30 ms %d" % (
                name, len(d), pct(d, .5), pct(d, .99), d[-1], sum(x > 10 for x in d),
                sum(x > 30 for x in d)))
    print("indexes written slowly (>10 ms) on every node at once: %d" %
          sum(1 for n in slow_at.values() if n == len(traces)))
    if dirty is None:
        return
    with open(dirty) as f:
        mem = [[float(x) for x in line.split()] for line in f if line.strip()]
    at = [m[0] for m in mem]

    def near(t):
        return mem[max(0, min(len(mem) - 1, bisect.bisect_left(at, t)))]

    span = [m for m in mem if lo / 1e9 <= m[0] <= hi / 1e9]
    if not span:
        print("%s: no sample in the run's span" % dirty)
        return
    print("page cache over the span: Dirty %d-%d kB, Writeback up to %d kB, %d pages written" % (
        min(m[1] for m in span), max(m[1] for m in span), max(m[2] for m in span),
        span[-1][4] - span[0][4]))
    for title, sel in (("slow (>10 ms)", [w for w in every if w[1] > 10]),
                       ("fast (<=2 ms)", [w for w in every if w[1] <= 2])):
        before = [near(t / 1e9)[4] - near(t / 1e9 - .1)[4] for t, _ in sel]
        if before:
            print("   pages written in the 100 ms before a %s write: mean %.0f (%d writes)" % (
                title, sum(before) / len(before), len(before)))


def main():
    dirty = None
    if "--dirty" in sys.argv[:-1]:
        k = sys.argv.index("--dirty")
        dirty = sys.argv[k + 1]
        del sys.argv[k:k + 2]
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    traces = {p: read_trace(p) for p in sorted(glob.glob(sys.argv[1] + ".*"))}
    if not traces:
        sys.exit("no traces at %s.*" % sys.argv[1])
    # The leader is the node that submitted entries.
    leader = max(traces, key=lambda p: sum(1 for v in traces[p][0].values() if v[0]))
    lead = traces[leader][0]
    with open(sys.argv[2]) as f:
        events = [[int(x) for x in line.split()] for line in f if line.strip()]
    start = events[0][1]
    idx = sorted(i for i, v in lead.items() if v[0] and v[0] >= start - 5e6 and v[9] > 0)
    firsts = [lead[i][8] for i in idx]
    samples = []
    for n, due, arrived in events:
        k = bisect.bisect_right(firsts, n) - 1
        if k >= 0 and firsts[k] <= n < firsts[k] + lead[idx[k]][9]:
            e = lead[idx[k]]
            samples.append((arrived - due, n, idx[k], split(e, due, arrived)))
    lat = sorted(s[0] for s in samples)
    if not lat:
        sys.exit("no event of %s is in the leader's trace" % sys.argv[2])

    def q(p):
        return lat[min(len(lat) - 1, int(len(lat) * p))] / 1e6

    print("leader %s: %d entries for %d events (%d found); p50 %.2f p90 %.2f p99 %.2f "
          "max %.2f ms" % (leader, len(idx), len(events), len(samples), q(.5), q(.9), q(.99),
                           lat[-1] / 1e6))
    for title, floor in (("p99 tail", q(.99)), ("p90 tail", q(.9)), ("all", 0)):
        sel = [s for s in samples if s[0] / 1e6 >= floor]
        largest = collections.Counter(STAGES[max(range(len(STAGES)), key=lambda j: s[3][j])]
                                      for s in sel)
        means = [sum(s[3][j] for s in sel) / len(sel) / 1e6 for j in range(len(STAGES))]
        print("%s (%d): largest stage %s" % (title, len(sel), dict(largest.most_common())))
        print("   mean ms: " + ", ".join("%s %.2f" % (n, m) for n, m in zip(STAGES, means)))
    slowest = sorted(samples)[-int(sys.argv[3]):] if len(sys.argv) > 3 else []
    for s in slowest:
        print("event %d %.1f ms, entry %d of %d events: %s" % (
            s[1], s[0] / 1e6, s[2], lead[s[2]][9], " ".join("%.1f" % (x / 1e6) for x in s[3])))
    log_writes(traces, start, max(e[2] for e in events), dirty)
    for path, (_, notes) in traces.items():
        for note in notes:
            print(path, note)


if __name__ == "__main__":
    main()
