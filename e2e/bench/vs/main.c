/*
 * e2e/bench/vs/main.c - bench_vs: krappyd, NATS JetStream and Redis
 * Streams, the same workloads, the same machine, the same run (issue 7).
 *
 *   bench_vs [--reps N] [--only krappy,nats,redis] [--quick] [--out FILE]
 *
 * Each repetition starts every system fresh and runs, against each in turn:
 * ingest without and with fsync before ack, consume by offset, group consume
 * with acks, PING and latest value by key (one at a time, then pipelined),
 * single-event publishes (one at a time, then pipelined; issue 13) and
 * produce->consume latency at a fixed rate; then a fresh server per system
 * runs produce->consume for the long run (30 s), and another is loaded with
 * 10M events over 1M keys and its RSS read. A loopback TCP ping-pong between
 * two processes, measured in the same repetition, is the floor for the
 * latency figures. Medians over the repetitions, with min and max, CPU of
 * client and server (and the server's per event), and krappyd's ratio to
 * each peer, go to a Markdown table printed on stdout and written to --out,
 * followed by the targets of issues 7 and 13 checked against this run.
 *
 * Then, in each repetition, the 3-node clusters (issue 18): three krappyd on
 * Raft against three nats-server with R3 streams, each on 127.0.0.1 and
 * fresh: C1 batched ingest, C2 produce->consume at --cluster-rate, C3 the
 * time from SIGKILL of the leader to the first acknowledged write through
 * the survivors (then every acknowledged event is checked to be there).
 * Their rows follow the single-node ones, krappyd's cluster the yardstick.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "../../harness.h"
#include "vs.h"

#define MAX_REPS 9
#define NSYS     5
#define KRAPPY   0
#define REDIS    2
#define KRAPPY3  3 /* the first of the 3-node clusters */

static const vs_system *const systems[NSYS] = {&vs_krappy, &vs_nats, &vs_redis, &vs_krappy3,
                                               &vs_nats3};

typedef enum { RATE, LATENCY, MEMORY, RECOVERY } phase_kind;

typedef enum {
    P_INGEST,
    P_INGEST_SYNC,
    P_CONSUME,
    P_GROUP,
    P_GET_ONE,
    P_GET_PIPED,
    P_LATENCY,
    P_RSS,
    P_PUB_PIPED,
    P_PUB_ONE,
    P_PING,
    P_LATENCY_LONG,
    P_C_INGEST,
    P_C_LATENCY,
    P_C_RECOVER,
    NPHASE
} phase_id;

static const struct {
    const char *title;
    phase_kind kind;
} phases[NPHASE] = {
    [P_INGEST] = {"1. ingest, no fsync per ack", RATE},
    [P_INGEST_SYNC] = {"2. ingest, fsync before ack", RATE},
    [P_CONSUME] = {"3. consume by offset", RATE},
    [P_GROUP] = {"4. group consume + ack", RATE},
    [P_GET_ONE] = {"5a. latest value by key, one at a time", LATENCY},
    [P_GET_PIPED] = {"5b. latest value by key, pipelined", RATE},
    [P_LATENCY] = {"6. produce→consume latency at a fixed rate", LATENCY},
    [P_RSS] = {"7. server RSS after the big load", MEMORY},
    [P_PUB_PIPED] = {"8a. single-event publish, pipelined", RATE},
    [P_PUB_ONE] = {"8b. single-event publish, one at a time", LATENCY},
    [P_PING] = {"8c. PING, one at a time", LATENCY},
    [P_LATENCY_LONG] = {"9. produce→consume, the long run", LATENCY},
    [P_C_INGEST] = {"C1. 3 nodes: batched ingest, ack once a majority has it", RATE},
    [P_C_LATENCY] = {"C2. 3 nodes: produce→consume at a fixed rate", LATENCY},
    [P_C_RECOVER] = {"C3. 3 nodes: leader SIGKILLed → next write acknowledged", RECOVERY},
};

#define CLUSTER_PHASE(ph) ((ph) >= P_C_INGEST)

/* The phases of one server lifetime, in the order they run: consume, group
 * and the reads need what ingest wrote. */
static const phase_id run_order[] = {P_INGEST,    P_CONSUME, P_GROUP,     P_PING,        P_GET_ONE,
                                     P_GET_PIPED, P_PUB_ONE, P_PUB_PIPED, P_INGEST_SYNC, P_LATENCY};
/* ... of a 3-node cluster: recovery last, it kills a node. */
static const phase_id cluster_order[] = {P_C_INGEST, P_C_LATENCY, P_C_RECOVER};

/* One run of one phase on one system. */
typedef struct sample {
    int status;       /* VS_OK, VS_SKIP, VS_FAIL, or -2: not run */
    double value;     /* events/s, p50 us, or MiB */
    double p99, p999; /* us, latency phases */
    double worst99;   /* us, produce->consume: p99 of its worst second */
    double cli, srv;  /* CPU, % of one core */
    double srv_us;    /* server CPU per event or request, us */
    char why[256];    /* skip note or failure */
} sample;

static sample results[NSYS][NPHASE][MAX_REPS];
static double floor_p50[MAX_REPS], floor_p99[MAX_REPS];
static int reps = 3;
static bool wanted[NPHASE]; /* --workloads */
static double lat_rate;     /* produce->consume events/s (samples per second) */
static int failures;
static bool tty;
static double started;

static void progress(int rep, const char *sys, const char *what)
{
    char line[200];
    snprintf(line, sizeof line, "[%3.0fs] rep %d/%d  %-15s %s", vs_now_s() - started, rep + 1, reps,
             sys, what);
    if (tty)
        fprintf(stderr, "\r\033[K%s", line);
    else
        fprintf(stderr, "%s\n", line);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0; /* ns -> us */
}

/* ---- the loopback floor: two processes, 16 bytes each way ---- */

static int read_full(int fd, void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)p + got, n - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

static int loopback_floor(double *p50, double *p99)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 1) < 0 ||
        getsockname(ls, (struct sockaddr *)&a, &alen) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        int c = accept(ls, NULL, NULL);
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char buf[16];
        while (read_full(c, buf, sizeof buf) == 0)
            if (write(c, buf, sizeof buf) != (ssize_t)sizeof buf)
                break;
        _exit(0);
    }
    close(ls);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, rc = -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    enum { WARM = 1000, N = 20000 };
    uint64_t *lat = malloc(N * sizeof *lat);
    if (lat != NULL && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        char buf[16] = "ping-pong-floor";
        rc = 0;
        for (int i = 0; i < WARM + N && rc == 0; i++) {
            uint64_t t = vs_now_ns();
            if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf || read_full(fd, buf, sizeof buf))
                rc = -1;
            else if (i >= WARM)
                lat[i - WARM] = vs_now_ns() - t;
        }
        if (rc == 0) {
            qsort(lat, N, sizeof *lat, cmp_u64);
            *p50 = pct(lat, N, 0.50);
            *p99 = pct(lat, N, 0.99);
        }
    }
    close(fd);
    free(lat);
    waitpid(pid, NULL, 0);
    return rc;
}

/* ---- running phases ---- */

/*
 * The p99 of the worst second of a produce->consume run. Consumers check
 * that event n is the n-th to arrive, so sample n is event n, sent at
 * n / rate seconds into the run: each second of sending is a run of `rate`
 * samples. A run that keeps up has the same tail in every second; one that
 * falls behind (or stalls at checkpoints) shows it here.
 */
static double worst_second_p99(const uint64_t *lat, size_t n, double rate)
{
    size_t per = rate >= 1 ? (size_t)rate : 1;
    double worst = 0;
    uint64_t *tmp = malloc(per * sizeof *tmp);
    if (tmp == NULL)
        return 0;
    for (size_t at = 0; at + per / 2 <= n && n > 0; at += per) {
        size_t k = n - at < per ? n - at : per;
        memcpy(tmp, lat + at, k * sizeof *tmp);
        qsort(tmp, k, sizeof *tmp, cmp_u64);
        double p = pct(tmp, k, 0.99);
        if (p > worst)
            worst = p;
    }
    free(tmp);
    return worst;
}

static void record(sample *s, int rc, vs_ctx *x, vs_meter *m, long done, phase_kind kind,
                   bool per_second)
{
    s->status = rc;
    if (rc == VS_SKIP) {
        snprintf(s->why, sizeof s->why, "%.250s", x->note[0] ? x->note : "not supported");
        return;
    }
    if (rc != VS_OK) {
        snprintf(s->why, sizeof s->why, "%.250s", x->err[0] ? x->err : "failed");
        failures++;
        return;
    }
    double secs = m->t1 - m->t0;
    if (secs <= 0)
        secs = 1e-9;
    s->cli = 100 * (m->cli1 - m->cli0) / secs;
    s->srv = 100 * (m->srv1 - m->srv0) / secs;
    if (done > 0)
        s->srv_us = 1e6 * (m->srv1 - m->srv0) / (double)done;
    if (kind == RATE) {
        s->value = (double)done / secs;
    } else if (kind == RECOVERY) {
        s->value = m->nlat > 0 ? (double)m->lat[0] / 1e6 : 0; /* ms */
    } else if (kind == LATENCY) {
        if (per_second)
            s->worst99 = worst_second_p99(m->lat, m->nlat, lat_rate);
        qsort(m->lat, m->nlat, sizeof *m->lat, cmp_u64);
        s->value = pct(m->lat, m->nlat, 0.50);
        s->p99 = pct(m->lat, m->nlat, 0.99);
        s->p999 = pct(m->lat, m->nlat, 0.999);
        if (m->nlat == 0) {
            s->status = VS_FAIL;
            snprintf(s->why, sizeof s->why, "no latency samples");
            failures++;
        }
    }
}

/* One phase: a fresh meter, the backend's call, the sample. */
static int run_phase(int si, int rep, phase_id ph, vs_ctx *x)
{
    const vs_system *sys = systems[si];
    vs_meter m = {.server = x->srv->pid};
    long done = 0;
    int rc;
    x->err[0] = x->note[0] = '\0';
    progress(rep, sys->name, phases[ph].title);
    switch (ph) {
    case P_INGEST:
        rc = sys->ingest(x, &m, false, &done);
        break;
    case P_INGEST_SYNC:
        rc = sys->ingest(x, &m, true, &done);
        break;
    case P_CONSUME:
        rc = sys->consume(x, &m, &done);
        break;
    case P_GROUP:
        rc = sys->group(x, &m, &done);
        break;
    case P_GET_ONE:
        rc = sys->get_one(x, &m, &done);
        break;
    case P_GET_PIPED:
        rc = sys->get_piped(x, &m, &done);
        break;
    case P_LATENCY:
        rc = sys->latency(x, &m, &done);
        break;
    case P_PUB_PIPED:
        rc = sys->publish_piped(x, &m, &done);
        break;
    case P_PUB_ONE:
        rc = sys->publish_one(x, &m, &done);
        break;
    case P_PING:
        rc = sys->ping(x, &m, &done);
        break;
    case P_C_INGEST:
        rc = sys->ingest(x, &m, false, &done);
        break;
    case P_C_LATENCY:
        rc = sys->latency(x, &m, &done);
        break;
    case P_C_RECOVER:
        rc = sys->recover(x, &m, &done);
        break;
    default:
        rc = VS_FAIL;
        break;
    }
    record(&results[si][ph][rep], rc, x, &m, done, phases[ph].kind, ph == P_LATENCY);
    if (rc == VS_FAIL)
        fprintf(stderr, "%sbench_vs: %s, %s: %s\n", tty ? "\n" : "", sys->name, phases[ph].title,
                x->err);
    free(m.lat);
    return rc;
}

/* Before a system starts: what the systems before it left in the page
 * cache goes to the disk now, not under this one's timed syncs. */
static void settle_disk(int rep, const char *name)
{
    progress(rep, name, "waiting for the page cache's dirty data to reach the disk");
    sync();
}

static void mark_rest(int si, int rep, const phase_id *order, size_t n, phase_id from,
                      const char *why)
{
    bool on = false;
    for (size_t i = 0; i < n; i++) {
        if (order[i] == from)
            on = true;
        sample *x = &results[si][order[i]][rep];
        if (on && x->status == -2) {
            x->status = VS_SKIP;
            snprintf(x->why, sizeof x->why, "%s", why);
        }
    }
}

static void run_system(int si, int rep, const vs_params *p)
{
    const vs_system *sys = systems[si];
    vs_server srv = {0};
    bool cl = si >= KRAPPY3;
    const phase_id *order = cl ? cluster_order : run_order;
    size_t n =
        cl ? sizeof cluster_order / sizeof *cluster_order : sizeof run_order / sizeof *run_order;
    phase_id first = cl ? P_C_INGEST : P_INGEST;
    /* A cluster's own counts: its ingest is far slower than one node's. */
    vs_params cp = *p;
    cp.events = p->cluster_events;
    cp.rate = p->cluster_rate;
    vs_ctx x = {.p = cl ? &cp : p, .srv = &srv};
    settle_disk(rep, sys->name);
    progress(rep, sys->name, "starting");
    int rc = sys->start(&x);
    if (rc != VS_OK) {
        if (rc == VS_FAIL) {
            fprintf(stderr, "%sbench_vs: %s does not start: %s\n", tty ? "\n" : "", sys->name,
                    x.err);
            failures++;
        }
        mark_rest(si, rep, order, n, first, rc == VS_SKIP ? x.note : x.err);
        sys->stop(&x);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (!wanted[order[i]])
            continue;
        rc = run_phase(si, rep, order[i], &x);
        /* consume, group and get read what ingest wrote (recover checks it) */
        if (rc != VS_OK && order[i] == first) {
            mark_rest(si, rep, order, n, order[1], "ingest did not complete");
            break;
        }
    }
    sys->stop(&x);
}

/* A phase that gets a server of its own: the RSS load (P_RSS) or the long
 * produce->consume run (P_LATENCY_LONG). */
static void run_fresh(int si, int rep, const vs_params *p, phase_id ph)
{
    const vs_system *sys = systems[si];
    vs_server srv = {0};
    vs_params lp = *p;
    lp.lat_secs = p->long_secs;
    vs_ctx x = {.p = ph == P_LATENCY_LONG ? &lp : p, .srv = &srv};
    sample *s = &results[si][ph][rep];
    settle_disk(rep, sys->name);
    progress(rep, sys->name, "starting a fresh server");
    int rc = sys->start(&x);
    if (rc == VS_OK) {
        vs_meter m = {.server = srv.pid};
        long done = 0;
        progress(rep, sys->name, phases[ph].title);
        if (ph == P_RSS) {
            rc = sys->load(&x, &m, &done);
            record(s, rc, &x, &m, done, RATE, false);
        } else {
            rc = sys->latency(&x, &m, &done);
            record(s, rc, &x, &m, done, LATENCY, true);
        }
        if (rc == VS_OK && ph == P_RSS) {
            s->p99 = s->value; /* the load rate, shown in the note column */
            long kib = e2e_pid_rss_kib(srv.pid);
            s->value = kib > 0 ? (double)kib / 1024.0 : 0;
        } else if (rc == VS_FAIL) {
            fprintf(stderr, "%sbench_vs: %s, %s: %s\n", tty ? "\n" : "", sys->name,
                    phases[ph].title, x.err);
        }
        free(m.lat);
    } else {
        s->status = rc;
        snprintf(s->why, sizeof s->why, "%.250s", rc == VS_SKIP ? x.note : x.err);
        if (rc == VS_FAIL)
            failures++;
    }
    sys->stop(&x);
}

/* ---- the table ---- */

typedef struct summary {
    int ok; /* samples that succeeded */
    double med, min, max, p99, p999, worst99, cli, srv, srv_us;
    char why[256];
} summary;

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Medians over the repetitions that succeeded (min and max of the value). */
static summary summarize(int si, phase_id ph)
{
    summary s = {0};
    double v[MAX_REPS], a[MAX_REPS], b[MAX_REPS], c[MAX_REPS], d[MAX_REPS], w[MAX_REPS],
        u[MAX_REPS];
    for (int r = 0; r < reps; r++) {
        const sample *x = &results[si][ph][r];
        if (x->status != VS_OK) {
            if (s.why[0] == '\0')
                snprintf(s.why, sizeof s.why, "%s%s", x->status == VS_FAIL ? "failed: " : "",
                         x->why);
            continue;
        }
        v[s.ok] = x->value;
        a[s.ok] = x->p99;
        b[s.ok] = x->p999;
        c[s.ok] = x->cli;
        d[s.ok] = x->srv;
        w[s.ok] = x->worst99;
        u[s.ok] = x->srv_us;
        s.ok++;
    }
    if (s.ok == 0)
        return s;
    s.med = median(v, s.ok);
    s.min = v[0];
    s.max = v[s.ok - 1];
    s.p99 = median(a, s.ok);
    s.p999 = median(b, s.ok);
    s.cli = median(c, s.ok);
    s.srv = median(d, s.ok);
    s.worst99 = median(w, s.ok);
    s.srv_us = median(u, s.ok);
    return s;
}

static void fmt_num(char *out, size_t n, double v, phase_kind k)
{
    if (k == RATE)
        snprintf(out, n, "%.0f", v);
    else
        snprintf(out, n, "%.1f", v);
}

static const char *unit_of(phase_id ph)
{
    switch (phases[ph].kind) {
    case RATE:
        return ph == P_GET_PIPED ? "reads/s" : "events/s";
    case LATENCY:
        return "p50 µs";
    case RECOVERY:
        return "ms";
    default:
        return "MiB";
    }
}

/* The order phases are listed in: by their number. */
static const phase_id table_order[] = {P_INGEST,    P_INGEST_SYNC, P_CONSUME,  P_GROUP,
                                       P_GET_ONE,   P_GET_PIPED,   P_LATENCY,  P_RSS,
                                       P_PUB_PIPED, P_PUB_ONE,     P_PING,     P_LATENCY_LONG,
                                       P_C_INGEST,  P_C_LATENCY,   P_C_RECOVER};

static void table(FILE *f, const vs_params *p)
{
    fprintf(f, "| workload | system | median | min – max | p99 µs | p99.9 µs | client CPU | server "
               "CPU | server CPU µs/op | krappyd/this |\n"
               "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for (size_t o = 0; o < sizeof table_order / sizeof *table_order; o++) {
        phase_id ph = table_order[o];
        int ref = CLUSTER_PHASE(ph) ? KRAPPY3 : KRAPPY; /* krappyd/this: this one's */
        summary k = summarize(ref, ph);
        bool titled = false; /* the title goes on the phase's first row */
        for (int si = 0; si < NSYS; si++) {
            summary s = si == ref ? k : summarize(si, ph);
            if (s.ok == 0 && s.why[0] == '\0')
                continue; /* not selected */
            const char *name = titled ? "" : phases[ph].title;
            titled = true;
            if (s.ok == 0) {
                fprintf(f, "| %s | %s | — | %s | | | | | | |\n", name, systems[si]->name, s.why);
                continue;
            }
            char med[32], lo[32], hi[32], p99[64] = "", p999[32] = "", ratio[32] = "", us[32] = "";
            fmt_num(med, sizeof med, s.med, phases[ph].kind);
            fmt_num(lo, sizeof lo, s.min, phases[ph].kind);
            fmt_num(hi, sizeof hi, s.max, phases[ph].kind);
            if (phases[ph].kind == LATENCY) {
                if (ph == P_LATENCY || ph == P_LATENCY_LONG)
                    snprintf(p99, sizeof p99, "%.1f (worst 1 s: %.1f)", s.p99, s.worst99);
                else
                    snprintf(p99, sizeof p99, "%.1f", s.p99);
                snprintf(p999, sizeof p999, "%.1f", s.p999);
            } else if (phases[ph].kind == MEMORY) {
                snprintf(p99, sizeof p99, "load %.0f/s", s.p99);
            }
            if (phases[ph].kind != MEMORY && phases[ph].kind != RECOVERY)
                snprintf(us, sizeof us, "%.2f", s.srv_us);
            if (si != ref && k.ok > 0 && s.med > 0)
                snprintf(ratio, sizeof ratio, "%.2f×", k.med / s.med);
            fprintf(f, "| %s | %s | %s %s | %s – %s | %s | %s | %.0f%% | %.0f%% | %s | %s |\n",
                    name, systems[si]->name, med, unit_of(ph), lo, hi, p99, p999, s.cli, s.srv, us,
                    ratio);
        }
    }
    double fl[MAX_REPS], fl99[MAX_REPS];
    memcpy(fl, floor_p50, sizeof fl);
    memcpy(fl99, floor_p99, sizeof fl99);
    double fl50 = median(fl, reps); /* sorts fl: min and max after it */
    fprintf(f,
            "| loopback TCP ping-pong (the floor) | 2 processes | %.1f p50 µs | %.1f – %.1f | "
            "%.1f | | | | | |\n",
            fl50, fl[0], fl[reps - 1], median(fl99, reps));
    fprintf(f,
            "\nRates: higher is better, so krappyd/this > 1 means krappyd is faster. Latency and "
            "RSS: lower is better, so < 1 means krappyd is faster. CPU is in %% of one core "
            "(2 cores shared by client and server); server CPU µs/op is the server's CPU time "
            "per event (per read for 5, per request for 8c); min – max over %d repetitions. "
            "Produce→consume: the p99 of the worst second of sending in brackets; the long run "
            "lasts %.0f s on a fresh server. Absolute figures move between machines (and with "
            "the load of a shared one); the ratios of one run are what to compare. C1-C3: 3-node "
            "clusters on this one machine (every node, the client and the replication traffic "
            "share its cores and disk); the CPU columns are the server the client talks to "
            "(krappyd's leader; NATS's node 1), C3 is one kill per repetition, from the kill to "
            "the first write the survivors acknowledge.\n",
            reps, p->long_secs);
}

/* ---- targets (issues 7, 13 and 18), against the medians of this run ---- */

/* One target row: `got` against `want` (at most, or at least); none when
 * `ok` is false (either side not measured). */
static void target_row(FILE *f, const char *what, bool ok, double got, double want, bool at_most,
                       const char *unit, int prec)
{
    if (!ok)
        return; /* not selected in this run (or failed: the table says why) */
    bool met = at_most ? got <= want : got >= want;
    fprintf(f, "| %s | %s %.*f %s | %.*f %s | %s |\n", what, at_most ? "≤" : "≥", prec, want, unit,
            prec, got, unit, met ? "yes" : "**no**");
}

static void targets(FILE *f)
{
    summary k[NPHASE], r[NPHASE];
    for (int ph = 0; ph < NPHASE; ph++) {
        k[ph] = summarize(KRAPPY, (phase_id)ph);
        r[ph] = summarize(REDIS, (phase_id)ph);
    }
#define K(ph)  (k[ph].ok > 0)
#define KR(ph) (k[ph].ok > 0 && r[ph].ok > 0)
    fprintf(f, "\n| krappyd target | wanted | measured | met |\n|---|--:|--:|:-:|\n");
    target_row(f, "ingest, no fsync, 1 connection", K(P_INGEST), k[P_INGEST].med, 1e6, false,
               "events/s", 0);
    target_row(f, "ingest: 3× Redis XADD", KR(P_INGEST), k[P_INGEST].med, 3 * r[P_INGEST].med,
               false, "events/s", 0);
    target_row(f, "ingest, ack sync", K(P_INGEST_SYNC), k[P_INGEST_SYNC].med, 5e5, false,
               "events/s", 0);
    target_row(f, "consume by offset", K(P_CONSUME), k[P_CONSUME].med, 2e6, false, "events/s", 0);
    target_row(f, "group consume + ack", K(P_GROUP), k[P_GROUP].med, 1e6, false, "events/s", 0);
    target_row(f, "single-event publish pipelined", K(P_PUB_PIPED), k[P_PUB_PIPED].med, 6e5, false,
               "events/s", 0);
    target_row(f, "single-event publish pipelined: 1.5× Redis XADD", KR(P_PUB_PIPED),
               k[P_PUB_PIPED].med, 1.5 * r[P_PUB_PIPED].med, false, "events/s", 0);
    target_row(f, "one publish at a time p50 (PING p50 + 10 µs)", K(P_PUB_ONE) && K(P_PING),
               k[P_PUB_ONE].med, k[P_PING].med + 10, true, "µs", 1);
    target_row(f, "GET one at a time p50 (PING p50 + 5 µs)", K(P_GET_ONE) && K(P_PING),
               k[P_GET_ONE].med, k[P_PING].med + 5, true, "µs", 1);
    target_row(f, "GET pipelined", K(P_GET_PIPED), k[P_GET_PIPED].med, 5e5, false, "reads/s", 0);
    target_row(f, "GET pipelined: 1.5× Redis HGET", KR(P_GET_PIPED), k[P_GET_PIPED].med,
               1.5 * r[P_GET_PIPED].med, false, "reads/s", 0);
    static const phase_id lat[] = {P_LATENCY, P_LATENCY_LONG};
    for (int i = 0; i < 2; i++) {
        phase_id ph = lat[i];
        char what[128];
        const char *run = i == 0 ? "produce→consume" : "produce→consume, long run";
        snprintf(what, sizeof what, "%s p99", run);
        target_row(f, what, K(ph), k[ph].p99, 1000, true, "µs", 1);
        snprintf(what, sizeof what, "%s p99: Redis's", run);
        target_row(f, what, KR(ph), k[ph].p99, r[ph].p99, true, "µs", 1);
        snprintf(what, sizeof what, "%s p99.9", run);
        target_row(f, what, K(ph), k[ph].p999, 5000, true, "µs", 1);
        snprintf(what, sizeof what, "%s p99 of the worst second", run);
        target_row(f, what, K(ph), k[ph].worst99, 1000, true, "µs", 1);
    }
    target_row(f, "RSS, 10M events over 1M keys", K(P_RSS), k[P_RSS].med, 256, true, "MiB", 1);
    /* Issue 18: the 3-node cluster against NATS R3. */
    summary k3[NPHASE], n3[NPHASE];
    for (int ph = P_C_INGEST; ph < NPHASE; ph++) {
        k3[ph] = summarize(KRAPPY3, (phase_id)ph);
        n3[ph] = summarize(KRAPPY3 + 1, (phase_id)ph);
    }
    target_row(f, "3 nodes: ingest 2× NATS R3", k3[P_C_INGEST].ok && n3[P_C_INGEST].ok,
               k3[P_C_INGEST].med, 2 * n3[P_C_INGEST].med, false, "events/s", 0);
    target_row(f, "3 nodes: produce→consume p99: NATS R3's",
               k3[P_C_LATENCY].ok && n3[P_C_LATENCY].ok, k3[P_C_LATENCY].p99, n3[P_C_LATENCY].p99,
               true, "µs", 1);
    target_row(f, "3 nodes: leader killed → next write acknowledged", k3[P_C_RECOVER].ok > 0,
               k3[P_C_RECOVER].max, 2000, true, "ms (worst)", 0);
    /* Cheaper per event than Redis (issue 13's goal, reported). */
    static const phase_id cpu[] = {P_INGEST,    P_GET_ONE, P_GET_PIPED, P_LATENCY,
                                   P_PUB_PIPED, P_PUB_ONE, P_PING,      P_LATENCY_LONG};
    for (size_t i = 0; i < sizeof cpu / sizeof *cpu; i++) {
        char what[160];
        snprintf(what, sizeof what, "server CPU per op, %s: Redis's", phases[cpu[i]].title);
        target_row(f, what, KR(cpu[i]), k[cpu[i]].srv_us, r[cpu[i]].srv_us, true, "µs", 2);
    }
#undef K
#undef KR
}

static void first_line(const char *cmd, char *out, size_t n)
{
    out[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return;
    if (fgets(out, (int)n, p) != NULL)
        out[strcspn(out, "\n")] = '\0';
    pclose(p);
}

static void header(FILE *f, const vs_params *p)
{
    char date[64], cpu[160] = "?", kv[128], nv[128], rv[128];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    first_line("grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'", cpu, sizeof cpu);
    struct utsname u;
    uname(&u);
    const char *kd = getenv("KRAPPYD") ? getenv("KRAPPYD") : "bin/krappyd";
    char cmd[400];
    snprintf(cmd, sizeof cmd, "%s --version 2>&1", kd);
    first_line(cmd, kv, sizeof kv);
    first_line("nats-server --version 2>&1", nv, sizeof nv);
    first_line("redis-server --version 2>&1 | cut -d' ' -f1-3", rv, sizeof rv);
    fprintf(f, "## krappyd vs NATS JetStream vs Redis Streams\n\n");
    fprintf(f,
            "%s; %s, %ld cores, Linux %s; %s, %s, %s. Everything on 127.0.0.1, client and "
            "server sharing the cores.\n\n",
            date, cpu, sysconf(_SC_NPROCESSORS_ONLN), u.release, kv, nv, rv);
    fprintf(f,
            "Workloads: %ld events of %d-byte keys drawn from %ld and %d-byte values; batches of "
            "%d; %d batches in flight while ingesting; %d reads in flight when pipelined; %ld "
            "reads one at a time; %.0f events/s for %.0f s (and %.0f s) for produce→consume; %ld "
            "events over %ld keys for RSS; %ld single-event publishes with %d in flight, %ld one "
            "at a time, %ld PINGs; 3-node clusters: %ld events ingested, produce→consume at %.0f "
            "events/s for %.0f s. `make bench` (e2e/bench/vs).\n\n",
            p->events, VS_KEY_LEN, p->keys, VS_VALUE_LEN, p->batch, p->window, p->get_window,
            p->gets, p->rate, p->lat_secs, p->long_secs, p->rss_events, p->rss_keys, p->pub_events,
            p->pub_window, p->pubs_one, p->pings, p->cluster_events, p->cluster_rate, p->lat_secs);
}

/* Whether the comma-separated list names id exactly ("nats3" is not "nats"). */
static bool listed(const char *list, const char *id)
{
    size_t n = strlen(id);
    for (const char *p = list; *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, id, n) == 0)
            return true;
        p += len + (p[len] == ',');
    }
    return false;
}

/* The first name of the list that is no system's, or NULL. */
static const char *unknown_system(const char *list, char *buf, size_t cap)
{
    for (const char *p = list; *p != '\0';) {
        size_t len = strcspn(p, ",");
        snprintf(buf, cap, "%.*s", (int)len, p);
        bool known = false;
        for (int si = 0; si < NSYS; si++)
            known = known || strcmp(buf, systems[si]->id) == 0;
        if (!known)
            return buf;
        p += len + (p[len] == ',');
    }
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_vs [--reps N] [--only krappy,nats,redis,krappy3,nats3]\n"
            "                [--workloads 1,2,...,C] [--quick] [--no-rss] [--no-cluster]\n"
            "                [--events N] [--rate N] [--long-secs N] [--rss-events N]\n"
            "                [--cluster-events N] [--cluster-rate N] [--out FILE]\n"
            "  --reps N        repetitions, medians over them (default 3, at most %d)\n"
            "  --only LIST     just these systems (krappy, nats, redis; krappy3 and nats3\n"
            "                  are the 3-node clusters)\n"
            "  --workloads L   just these workloads, by number (1-9; 3, 4, 5 need 1; C: the\n"
            "                  3-node clusters' C1-C3)\n"
            "  --no-cluster    skip the 3-node clusters\n"
            "  --cluster-events N  3-node clusters: events ingested (default 200000)\n"
            "  --cluster-rate N    3-node clusters: produce->consume events/s (default 1000)\n"
            "  --quick         a fifth of the counts, for trying things out\n"
            "  --no-rss        skip the 10M-event RSS load\n"
            "  --rate N        produce->consume: events per second (default 100000)\n"
            "  --long-secs N   produce->consume, the long run (9): seconds (default 30)\n"
            "  --out FILE      also write the table there (default build/bench/results.md)\n"
            "Servers: $KRAPPYD (bin/krappyd), $NATS_SERVER (nats-server), $REDIS_SERVER\n"
            "(redis-server); all on 127.0.0.1, data under $TMPDIR.\n",
            MAX_REPS);
}

int main(int argc, char **argv)
{
    vs_params p = {.events = 1000000,
                   .keys = 100000,
                   .batch = 1000,
                   .window = 8,
                   .get_window = 100,
                   .gets = 20000,
                   .gets_piped = 1000000,
                   .rate = 100000,
                   .lat_secs = 3,
                   .rss_events = 10000000,
                   .rss_keys = 1000000,
                   .pub_events = 1000000,
                   .pub_window = 64,
                   .pubs_one = 20000,
                   .pings = 20000,
                   .long_secs = 30,
                   .cluster_events = 200000,
                   .cluster_rate = 1000};
    const char *only = NULL, *out = "build/bench/results.md", *which = NULL;
    bool rss = true, cluster = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--reps") == 0 && v) {
            reps = atoi(v), i++;
        } else if (strcmp(a, "--workloads") == 0 && v) {
            which = v, i++;
        } else if (strcmp(a, "--only") == 0 && v) {
            only = v, i++;
        } else if (strcmp(a, "--out") == 0 && v) {
            out = v, i++;
        } else if (strcmp(a, "--events") == 0 && v) {
            p.events = atol(v), i++;
        } else if (strcmp(a, "--rate") == 0 && v) {
            p.rate = atof(v), i++;
        } else if (strcmp(a, "--long-secs") == 0 && v) {
            p.long_secs = atof(v), i++;
        } else if (strcmp(a, "--rss-events") == 0 && v) {
            p.rss_events = atol(v), i++;
        } else if (strcmp(a, "--no-rss") == 0) {
            rss = false;
        } else if (strcmp(a, "--no-cluster") == 0) {
            cluster = false;
        } else if (strcmp(a, "--cluster-events") == 0 && v) {
            p.cluster_events = atol(v), i++;
        } else if (strcmp(a, "--cluster-rate") == 0 && v) {
            p.cluster_rate = atof(v), i++;
        } else if (strcmp(a, "--quick") == 0) {
            p.events /= 5, p.gets /= 5, p.gets_piped /= 5, p.lat_secs = 1;
            p.rss_events /= 5, p.rss_keys /= 5;
            p.pub_events /= 5, p.pubs_one /= 5, p.pings /= 5, p.long_secs /= 5;
            p.cluster_events /= 5;
        } else {
            fprintf(stderr, "bench_vs: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (reps < 1 || reps > MAX_REPS || p.rate < 1 || p.rate > 1e7 || p.long_secs < 1 ||
        p.long_secs > 3600 || p.events < p.batch || p.events % p.batch != 0 ||
        p.rss_events < p.batch || p.rss_events % p.batch != 0 || p.cluster_events < p.batch ||
        p.cluster_events % p.batch != 0 || p.cluster_rate < 1 || p.cluster_rate > 1e7) {
        fprintf(
            stderr,
            "bench_vs: --reps must be 1..%d, --rate and --cluster-rate 1..10000000, --long-secs "
            "1..3600 and event counts multiples of %d\n",
            MAX_REPS, p.batch);
        return 2;
    }
    /* --workloads 1,2,5,6: by the number in the title ("5" is 5a and 5b);
     * ingest (1) runs whenever 3, 4 or 5 do, since they read what it wrote. */
    for (int ph = 0; ph < NPHASE; ph++) {
        char num[4];
        snprintf(num, sizeof num, "%c", phases[ph].title[0]);
        wanted[ph] = which == NULL || strstr(which, num) != NULL;
    }
    if (!rss)
        wanted[P_RSS] = false;
    for (int ph = P_C_INGEST; ph < NPHASE; ph++)
        wanted[ph] = cluster && (which == NULL || strchr(which, 'C') != NULL);
    if (wanted[P_C_LATENCY] || wanted[P_C_RECOVER])
        wanted[P_C_INGEST] = true; /* recover checks what ingest wrote */
    bool single = false;
    for (int ph = 0; ph < P_C_INGEST; ph++)
        single = single || wanted[ph];
    if (wanted[P_CONSUME] || wanted[P_GROUP] || wanted[P_GET_ONE] || wanted[P_GET_PIPED])
        wanted[P_INGEST] = true;
    /* PING is the yardstick of the one-at-a-time targets (5a, 8b). */
    if (wanted[P_GET_ONE] || wanted[P_PUB_ONE])
        wanted[P_PING] = true;
    lat_rate = p.rate;
    char bad[64];
    if (only != NULL && unknown_system(only, bad, sizeof bad) != NULL) {
        fprintf(stderr, "bench_vs: --only: no system is called '%s'\n", bad);
        usage(stderr);
        return 2;
    }
    bool on[NSYS];
    for (int si = 0; si < NSYS; si++)
        on[si] = only == NULL || listed(only, systems[si]->id);
    signal(SIGPIPE, SIG_IGN);
    tty = isatty(2);
    started = vs_now_s();

    for (int si = 0; si < NSYS; si++)
        for (int ph = 0; ph < NPHASE; ph++)
            for (int r = 0; r < MAX_REPS; r++)
                results[si][ph][r].status = -2;
    for (int r = 0; r < reps; r++) {
        progress(r, "loopback", "TCP ping-pong floor");
        if (loopback_floor(&floor_p50[r], &floor_p99[r]) < 0) {
            fprintf(stderr, "bench_vs: the loopback ping-pong failed: %s\n", strerror(errno));
            return 1;
        }
        for (int si = 0; si < KRAPPY3 && single; si++)
            if (on[si])
                run_system(si, r, &p);
        for (int si = 0; si < KRAPPY3 && wanted[P_LATENCY_LONG]; si++)
            if (on[si])
                run_fresh(si, r, &p, P_LATENCY_LONG);
        for (int si = 0; si < KRAPPY3 && wanted[P_RSS]; si++)
            if (on[si])
                run_fresh(si, r, &p, P_RSS);
        for (int si = KRAPPY3; si < NSYS && wanted[P_C_INGEST]; si++)
            if (on[si])
                run_system(si, r, &p);
    }
    if (tty)
        fprintf(stderr, "\r\033[K");
    fprintf(stderr, "bench_vs: done in %.0f s\n", vs_now_s() - started);

    FILE *files[2] = {stdout, NULL};
    if (out[0] != '\0') {
        char dir[512];
        snprintf(dir, sizeof dir, "%s", out);
        char *slash = strrchr(dir, '/');
        if (slash != NULL) {
            *slash = '\0';
            char cmd[600];
            snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
            if (system(cmd) != 0)
                fprintf(stderr, "bench_vs: cannot create %s\n", dir);
        }
        files[1] = fopen(out, "w");
        if (files[1] == NULL)
            fprintf(stderr, "bench_vs: cannot write %s: %s\n", out, strerror(errno));
    }
    for (int i = 0; i < 2; i++) {
        if (files[i] == NULL)
            continue;
        header(files[i], &p);
        table(files[i], &p);
        targets(files[i]);
    }
    fflush(stdout);
    if (files[1] != NULL) {
        fclose(files[1]);
        fprintf(stderr, "bench_vs: table written to %s\n", out);
    }
    if (failures > 0)
        fprintf(stderr, "bench_vs: %d run(s) failed (see above and the table)\n", failures);
    return failures > 0 ? 1 : 0;
}
