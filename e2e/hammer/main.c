/*
 * e2e/hammer/main.c - load and correctness tool for consumer groups.
 *
 * One process, one thread per connection, everything on 127.0.0.1, bounded
 * in time and in count; it stops by itself. N producers publish batches of
 * verifiable events (value "p<producer>-<seq>", each seq sent once) with ack
 * "sync" (or a share with "write"); M members of one consumer group (explicit
 * acks, short ack_wait_ms) POLL with long polls, pipelining each ACK with the
 * next POLL, acknowledging by `upto` or by `offsets`, sometimes late,
 * sometimes never (so that expiry redelivers). Members crash at random: the
 * connection is closed abruptly (sometimes with a POLL in flight, sometimes
 * with a reset), and the member comes back under its name or a new one. With
 * --kills the server is killed with SIGKILL at random moments and restarted
 * on the same data; clients reconnect, register again and go on.
 *
 * Every event handed to a member is recorded by offset (how many times, and
 * its payload); every PUBLISH acknowledgement by offset. At the end the
 * members drain the group (until its lag is 0) and the whole stream is read
 * with FETCH. The checks:
 *   1 every event acknowledged "sync" (and "write", without power cuts) is in
 *     the stream at its offset with its payload;
 *   2 every event below the group's cursor was delivered to some member
 *     (checked after every restart and at the end of the load);
 *   3 after draining, every event of the stream was delivered, and the
 *     group's cursor is the stream's end with nothing pending;
 *   4 the stream's offsets are contiguous from 0 and every payload is one
 *     that was sent, at most once;
 *   5 deliveries carried the stored payload, below the reply's `next`;
 *   6 the group's cursor after a kill -9 is at least every cursor an ACK's
 *     OK reported before it (only with --kills);
 *   7 no unexpected server error (or lost connection, or timeout);
 *   8 the server never died by itself (if it does, the end of its log - a
 *     sanitizer's report - is shown and it is restarted so that the other
 *     checks still run) and stops cleanly at the end (exit status 0);
 *   9 with --idempotent, the producers are libkrappy's idempotent handles
 *     (krappy_producer), which send everything unacknowledged again after
 *     each kill: every event they sent is in the stream exactly once (with
 *     power cuts: those of the producers acknowledged "sync"; --sync gives
 *     each producer one mode, the share of producers acknowledged "sync").
 * With --compact the topic is a compacted one (cleanup "compact", small
 * segments rolled every 200 ms, compaction unthrottled), so closed segments
 * are rewritten while producers, members and kills go on; the checks then
 * allow what compaction removes - an event whose key has a later one: the
 * stream's offsets only ascend (4), an acknowledged event is in the stream
 * or a later event of its key is (1, 9), only an acknowledged event whose
 * key was not sent again must have been delivered below the cursor (2) -
 * and one more:
 *  10 GET of every key gives the key's last event in the stream.
 * A watchdog ends a run that hangs. On a failure the server's directory
 * (data and log) is kept and named.
 *
 * Uses $KRAPPYD (default bin/krappyd) in a temp dir through e2e/harness, or
 * the running server at $KRAPPY_E2E_ADDR (then no kills). --powercut runs
 * the server under the shim ($KRAPPY_SHIM, $KRAPPY_POWERCUT) and turns each
 * kill into a power cut (kill -9, then the files cut back to what was made
 * durable); the server then gets --fsync-cursors.
 *
 * Exit status: 0 when every check passed, 1 when one failed, 2 for usage.
 *
 * This file holds the options and the run's timeline; hammer.h says where
 * the producers, the members, the server control and the checks live.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hammer.h"
#include "krappy/protocol.h"
#include "util/buf.h"
#include "proto/msg.h"

/* ---- options ---- */

hm_options hm_opt = {
    .producers = 2,
    .members = 3,
    .kills = 0,
    .batch = 50,
    .crash_every_ms = 1500,
    .sync_pct = 100,
    .ack_wait_ms = 1000,
    .poll_max = 500,
    .inflight = 4,
    .drain_s = 60,
    .seconds = 5,
    .max_events = 20000000,
    .max_lag = 200000,
};

__attribute__((format(printf, 1, 2))) void hm_say(const char *fmt, ...)
{
    if (!hm_opt.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hammer: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
/* ---- counters ---- */

struct hm_counters hm_st;
atomic_ulong hm_acked_hi, hm_ack_cursor_max;
atomic_int hm_stop_produce, hm_stop_members, hm_draining, hm_aborting;

static void *map_zero(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}
/* ---- main ---- */

static uint64_t watchdog_deadline;

/* Whatever hangs, the run ends: kill the server, keep its directory, fail. */
static void *watchdog_main(void *arg)
{
    (void)arg;
    while (e2e_now_ms() < watchdog_deadline)
        hm_sleep_ms(200);
    pthread_mutex_lock(&hm_srv_mu);
    pid_t pid = hm_own_server ? hm_srv.pid : 0;
    fprintf(stderr, "hammer: watchdog: still running at the deadline; giving up%s%s\n",
            hm_own_server ? "; data and log kept in " : "", hm_own_server ? hm_srv.dir : "");
    if (pid > 0)
        kill(pid, SIGKILL);
    printf("hammer: 0 passed, 1 failed (watchdog, seed %" PRIu64 ")\n", hm_opt.seed);
    fflush(stdout);
    _exit(1);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hammer [OPTIONS]\n"
            "  --producers N     producer connections (default 2)\n"
            "  --members M       members of the group (default 3)\n"
            "  --seconds S       load time (default 5)\n"
            "  --kills K         kill -9s of the server during the load (default 0)\n"
            "  --powercut        kills are power cuts (needs KRAPPY_SHIM, KRAPPY_POWERCUT)\n"
            "  --batch B         events per PUBLISH (default 50)\n"
            "  --inflight N      PUBLISHes in flight per producer (default 4)\n"
            "  --sync PCT        share of PUBLISHes with ack sync, the rest write (default 100)\n"
            "  --crash-every MS  a member crashes every MS on average; 0 never (default 1500)\n"
            "  --ack-wait MS     the members' ack_wait_ms (default 1000)\n"
            "  --poll-max N      POLL max (default 500)\n"
            "  --max-events N    events produced at most (default 20000000)\n"
            "  --max-lag N       producers pause while the group lags this much (default "
            "200000)\n"
            "  --prefill N       events published before the members start (default 0)\n"
            "  --idempotent      producers are idempotent handles: exactly once (check 9)\n"
            "  --compact         the topic is compacted during the load (check 10)\n"
            "  --drain S         seconds allowed for draining (default 60)\n"
            "  --seed X          random seed (default: from the clock)\n"
            "  --verbose         say what happens\n"
            "Starts $KRAPPYD (default bin/krappyd) in a temp dir, or uses $KRAPPY_E2E_ADDR.\n");
}

static int parse_args(int argc, char **argv)
{
    enum {
        O_PROD = 256,
        O_MEM,
        O_SEC,
        O_KILLS,
        O_PC,
        O_BATCH,
        O_INFL,
        O_SYNC,
        O_CRASH,
        O_ACKW,
        O_PMAX,
        O_MAXEV,
        O_LAG,
        O_PRE,
        O_DRAIN,
        O_SEED,
        O_VERB,
        O_IDEM,
        O_COMPACT,
        O_HELP
    };
    static const struct option lo[] = {
        {"producers", required_argument, NULL, O_PROD},
        {"members", required_argument, NULL, O_MEM},
        {"seconds", required_argument, NULL, O_SEC},
        {"kills", required_argument, NULL, O_KILLS},
        {"powercut", no_argument, NULL, O_PC},
        {"batch", required_argument, NULL, O_BATCH},
        {"inflight", required_argument, NULL, O_INFL},
        {"sync", required_argument, NULL, O_SYNC},
        {"crash-every", required_argument, NULL, O_CRASH},
        {"ack-wait", required_argument, NULL, O_ACKW},
        {"poll-max", required_argument, NULL, O_PMAX},
        {"max-events", required_argument, NULL, O_MAXEV},
        {"max-lag", required_argument, NULL, O_LAG},
        {"prefill", required_argument, NULL, O_PRE},
        {"drain", required_argument, NULL, O_DRAIN},
        {"seed", required_argument, NULL, O_SEED},
        {"verbose", no_argument, NULL, O_VERB},
        {"idempotent", no_argument, NULL, O_IDEM},
        {"compact", no_argument, NULL, O_COMPACT},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    bool seeded = false;
    int c, li = 0;
    while ((c = getopt_long(argc, argv, "", lo, &li)) != -1) {
        char *end = NULL;
        double d = optarg ? strtod(optarg, &end) : 0;
        bool bad = optarg != NULL && (end == optarg || *end != '\0' || d < 0);
        switch (c) {
        case O_PROD:
            hm_opt.producers = (int)d;
            bad |= d < 1 || d > MAX_PRODUCERS;
            break;
        case O_MEM:
            hm_opt.members = (int)d;
            bad |= d < 1 || d > MAX_MEMBERS;
            break;
        case O_SEC:
            hm_opt.seconds = d;
            bad |= d <= 0;
            break;
        case O_KILLS:
            hm_opt.kills = (int)d;
            break;
        case O_PC:
            hm_opt.powercut = true;
            break;
        case O_BATCH:
            hm_opt.batch = (int)d;
            bad |= d < 1 || d > 100000;
            break;
        case O_INFL:
            hm_opt.inflight = (int)d;
            bad |= d < 1 || d > MAX_INFLIGHT;
            break;
        case O_SYNC:
            hm_opt.sync_pct = (int)d;
            bad |= d > 100;
            break;
        case O_CRASH:
            hm_opt.crash_every_ms = (int)d;
            break;
        case O_ACKW:
            hm_opt.ack_wait_ms = (int)d;
            bad |= d < 1;
            break;
        case O_PMAX:
            hm_opt.poll_max = (int)d;
            bad |= d < 1;
            break;
        case O_MAXEV:
            hm_opt.max_events = (uint64_t)d;
            bad |= d < 1;
            break;
        case O_LAG:
            hm_opt.max_lag = (uint64_t)d;
            break;
        case O_PRE:
            hm_opt.prefill = (uint64_t)d;
            break;
        case O_DRAIN:
            hm_opt.drain_s = (int)d;
            bad |= d < 1;
            break;
        case O_SEED:
            hm_opt.seed = strtoull(optarg, &end, 0);
            bad = *end != '\0';
            seeded = true;
            break;
        case O_VERB:
            hm_opt.verbose = true;
            break;
        case O_IDEM:
            hm_opt.idempotent = true;
            break;
        case O_COMPACT:
            hm_opt.compact = true;
            break;
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "hammer: bad value '%s' for --%s\n", optarg, lo[li].name);
            return -1;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return -1;
    }
    if (!seeded) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        hm_opt.seed = ((uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)getpid()) %
                      1000000007u;
    }
    return 0;
}

/* Create the topic and the group (start "earliest"). */
static int create_topic_and_group(void)
{
    krappy_client *c = krappy_client_new(NULL);
    kr_buf b;
    krappy_frame f;
    int rc = -1;
    kr_buf_init(&b, 1u << 20);
    /* Segments small enough that many close, and compact, in a run. */
    static const char *const compacted[] = {"cleanup=compact", "segment_bytes=64K",
                                            "segment_ms=200", "delete_retention_ms=0"};
    if (c == NULL)
        abort();
    if (krappy_connect(c, hm_srv.host, hm_srv.port) != KRAPPY_OK ||
        (hm_opt.compact && krappy_topic_config(c, hm_topic, compacted, 4, NULL) != KRAPPY_OK) ||
        krappy_register_producer(c, hm_topic, "hammer-init", NULL) != KRAPPY_OK)
        goto out;
    kr_enc_consumer_register(&b, (kr_cid){0}, hm_topic, GROUP, "init", KR_START_EARLIEST, 0,
                             KR_CACK_EXPLICIT, (uint64_t)hm_opt.ack_wait_ms);
    if (krappy_call(c, KRAPPY_T_CONSUMER_REGISTER, b.data, b.len, &f) != KRAPPY_OK)
        goto out;
    rc = 0;
out:
    if (rc < 0)
        fprintf(stderr, "hammer: cannot create topic and group: %s\n", krappy_client_errmsg(c));
    kr_buf_free(&b);
    krappy_client_free(c);
    return rc;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    hm_own_server = e2e_external_addr() == NULL;
    if (!hm_own_server && hm_opt.kills > 0) {
        fprintf(stderr, "hammer: KRAPPY_E2E_ADDR is set: no kills\n");
        hm_opt.kills = 0;
    }
    if (hm_opt.powercut && (getenv("KRAPPY_SHIM") == NULL || getenv("KRAPPY_POWERCUT") == NULL)) {
        fprintf(stderr, "hammer: --powercut needs KRAPPY_SHIM and KRAPPY_POWERCUT\n");
        return 2;
    }
    if (hm_opt.powercut) {
        /* The shim is not sanitized and is preloaded before ASan's runtime. */
        const char *asan = getenv("ASAN_OPTIONS");
        char opts[1024];
        snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0", asan ? asan : "",
                 asan && asan[0] ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
    }
    int na = 0;
    hm_server_args[na++] = "--checkpoint-interval";
    hm_server_args[na++] = "50ms";
    hm_server_args[na++] = "--log-level";
    hm_server_args[na++] = "info";
    hm_server_args[na++] = "--shutdown-timeout";
    hm_server_args[na++] = "5s";
    if (hm_opt.powercut)
        hm_server_args[na++] = "--fsync-cursors";
    if (hm_opt.compact) {
        hm_server_args[na++] = "--compact-rate";
        hm_server_args[na++] = "1G";
    }
    hm_server_args[na] = NULL;

    hm_cap =
        hm_opt.max_events + hm_opt.prefill + (uint64_t)hm_opt.batch * MAX_INFLIGHT * MAX_PRODUCERS;
    hm_exp_at = map_zero(hm_cap * sizeof *hm_exp_at);
    hm_dval = map_zero(hm_cap * sizeof *hm_dval);
    hm_deliv = map_zero(hm_cap * sizeof *hm_deliv);
    if (hm_exp_at == NULL || hm_dval == NULL || hm_deliv == NULL) {
        fprintf(stderr, "hammer: cannot map records for %" PRIu64 " events\n", hm_cap);
        return 1;
    }

    if (hm_own_server) {
        if (hm_start_server(&hm_srv) < 0)
            return 1;
        /* The idempotent handles reconnect to a fixed address: restarts
         * listen on the first start's port. */
        static char listen_arg[64];
        snprintf(listen_arg, sizeof listen_arg, "127.0.0.1:%s", hm_srv.port);
        if (hm_opt.idempotent) {
            hm_server_args[na++] = "--listen";
            hm_server_args[na++] = listen_arg;
            hm_server_args[na] = NULL;
        }
    } else {
        if (e2e_start_or_external(&hm_srv) < 0)
            return 1;
        snprintf(hm_topic, sizeof hm_topic, "hammer-%d-%" PRIu64, (int)getpid(), hm_opt.seed);
    }
    hm_srv_up = true;
    printf("hammer: seed %" PRIu64 ", %d %sproducers, %d members, %.1f s, %d kills%s, batch %d, "
           "sync %d%%, crash every %d ms, ack_wait %d ms, %stopic %s\n",
           hm_opt.seed, hm_opt.producers, hm_opt.idempotent ? "idempotent " : "", hm_opt.members,
           hm_opt.seconds, hm_opt.kills, hm_opt.powercut ? " (power cuts)" : "", hm_opt.batch,
           hm_opt.sync_pct, hm_opt.crash_every_ms, hm_opt.ack_wait_ms,
           hm_opt.compact ? "compacted " : "", hm_topic);
    fflush(stdout);
    if (create_topic_and_group() < 0 || (hm_opt.prefill > 0 && hm_prefill() < 0)) {
        if (hm_own_server)
            e2e_stop(&hm_srv, 10000);
        return 1;
    }

    pthread_t wd;
    watchdog_deadline = e2e_now_ms() + (uint64_t)(hm_opt.seconds * 1000) +
                        ((uint64_t)hm_opt.drain_s + 600) * 1000 + (uint64_t)hm_opt.kills * 15000;
    if (pthread_create(&wd, NULL, watchdog_main, NULL) == 0)
        pthread_detach(wd);
    uint64_t t_start = e2e_now_ms();
    hm_members_start();
    hm_producers_start();

    /* The load, with kills spread over it at random. */
    hm_rng r;
    hm_rng_seed(&r, hm_opt.seed, 999999);
    uint64_t load_ms = (uint64_t)(hm_opt.seconds * 1000);
    uint64_t t_end = t_start + load_ms, last_up = t_start;
    bool server_lost = false;
    for (int k = 0; k < hm_opt.kills && !server_lost; k++) {
        double slot = (double)load_ms / hm_opt.kills;
        double jitter = ((double)(hm_rnd(&r) % 1000) / 1000.0 - 0.5) * 0.8;
        uint64_t at = t_start + (uint64_t)(slot * (k + 0.5 + jitter));
        uint64_t min_at = last_up + 60 + hm_rnd(&r) % 120; /* some load between kills */
        if (at < min_at)
            at = min_at;
        if (hm_sleep_until(at) < 0 || hm_kill_and_restart(false) < 0) {
            hm_fail(C_ERRORS, "the server did not come back after kill %d", k + 1);
            server_lost = true;
            atomic_store(&hm_aborting, 1);
        }
        last_up = e2e_now_ms();
    }
    if (!server_lost && hm_sleep_until(t_end) < 0) {
        hm_fail(C_ERRORS, "the server did not come back after a crash");
        server_lost = true;
        atomic_store(&hm_aborting, 1);
    }
    uint64_t t_load = e2e_now_ms();
    atomic_store(&hm_stop_produce, 1);
    hm_producers_join();
    uint64_t t_prod = e2e_now_ms();

    /* Check 2 at the end of the load, then drain. */
    hm_gstats g = {0};
    uint64_t cursor_at_load = 0;
    if (!server_lost && hm_current_stats(&g, false) == 0) {
        hm_check_below_cursor(&hm_below_checked, g.cursor, "at the end of the load");
        cursor_at_load = g.cursor;
    }
    atomic_store(&hm_draining, 1);
    uint64_t drain_deadline = e2e_now_ms() + (uint64_t)hm_opt.drain_s * 1000;
    bool drained = false;
    while (!server_lost && !atomic_load(&hm_aborting) && e2e_now_ms() < drain_deadline) {
        if (hm_current_stats(&g, true) == 0 && g.lag == 0 && g.pending == 0 && g.cursor == g.next) {
            drained = true;
            break;
        }
        if (hm_sleep_until(e2e_now_ms() + 20) < 0) {
            server_lost = true;
            atomic_store(&hm_aborting, 1);
        }
    }
    uint64_t t_drained = e2e_now_ms();
    hm_check_run[C_DRAINED] = true;
    if (!drained)
        hm_fail(C_DRAINED,
                "the group did not drain within %d s (cursor %" PRIu64 ", next %" PRIu64
                ", pending %" PRIu64 ")",
                hm_opt.drain_s, g.cursor, g.next, g.pending);
    atomic_store(&hm_stop_members, 1);
    hm_members_join();

    hm_verify_result vr = {0};
    uint64_t t_verify = e2e_now_ms();
    if (!server_lost && hm_watch_server() < 0)
        server_lost = true;
    if (!server_lost) {
        hm_verify_stream(&vr);
        if (drained && g.next != vr.next)
            hm_fail(C_DRAINED, "drained at next %" PRIu64 " but the stream ends at %" PRIu64,
                    g.next, vr.next);
    }
    t_verify = e2e_now_ms() - t_verify;
    hm_check_run[C_ERRORS] = true;
    if (hm_own_server) {
        hm_check_run[C_EXIT] = true;
        (void)hm_watch_server();
        bool keep = false;
        for (int i = 0; i < C_N; i++)
            keep |= atomic_load(&hm_check_fail[i]) > 0;
        int status = keep ? e2e_stop_keep(&hm_srv, 15000) : e2e_stop(&hm_srv, 15000);
        if (status != 0)
            hm_fail(C_EXIT, "krappyd exit status %d", status);
        if (keep || status != 0)
            fprintf(stderr, "hammer: data and log kept in %s\n", hm_srv.dir);
    }

    /* Summary. */
    double load_s = (double)(t_load - t_start) / 1000.0;
    double cons_s = (double)(t_drained - t_start) / 1000.0;
    unsigned long acked = atomic_load(&hm_st.acked_sync) + atomic_load(&hm_st.acked_write);
    printf("  produced : %lu events sent in %lu batches, %lu acknowledged (sync %lu, write %lu), "
           "%lu uncertain (connection lost); %.0f events/s acknowledged over %.1f s\n",
           atomic_load(&hm_st.sent), atomic_load(&hm_st.batches), acked,
           atomic_load(&hm_st.acked_sync), atomic_load(&hm_st.acked_write),
           atomic_load(&hm_st.uncertain),
           load_s > 0 ? (double)(acked - hm_opt.prefill) / load_s : 0, load_s);
    printf("  stream   : %" PRIu64 " events (next %" PRIu64 "), read back in %.1f s\n", vr.events,
           vr.next, (double)t_verify / 1000.0);
    printf("  consumed : %lu deliveries (%lu redeliveries) in %lu POLLs; ACKs %lu by upto, "
           "%lu by offsets, naming %lu events, %lu ignored; %lu abandoned, %lu acknowledged late\n",
           atomic_load(&hm_st.deliveries), atomic_load(&hm_st.redeliveries),
           atomic_load(&hm_st.polls), atomic_load(&hm_st.acks_upto),
           atomic_load(&hm_st.acks_offsets), atomic_load(&hm_st.acked_named),
           atomic_load(&hm_st.ignored), atomic_load(&hm_st.abandoned), atomic_load(&hm_st.late));
    printf("  consume+ack: cursor %" PRIu64 " at the end of the load (%.0f events/s), "
           "%" PRIu64 " drained after %.1f s (%.0f events/s); drain took %.1f s\n",
           cursor_at_load, load_s > 0 ? (double)cursor_at_load / load_s : 0, vr.next, cons_s,
           cons_s > 0 ? (double)vr.next / cons_s : 0, (double)(t_drained - t_prod) / 1000.0);
    printf("  faults   : %lu member crashes (%lu under the same name), %lu member connects, "
           "%lu producer reconnects, %d kills%s (restart %.0f ms on average), %d server crashes\n",
           atomic_load(&hm_st.crashes), atomic_load(&hm_st.takeovers_risked),
           atomic_load(&hm_st.reconnects), atomic_load(&hm_st.prod_reconnects), hm_kills_done,
           hm_opt.powercut ? " with power cuts" : "",
           hm_kills_done ? hm_restart_ms_total / hm_kills_done : 0.0, hm_crashes_seen);
    return hm_report_checks() ? 1 : 0;
}
