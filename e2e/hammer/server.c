/*
 * e2e/hammer/server.c - the krappyd under test: where clients connect, its
 * kill -9 (or power cut) and restart with the checks that must hold right
 * after one, a server that died by itself, and the group's STATS.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hammer.h"

char hm_topic[128] = "hammer";
pthread_mutex_t hm_srv_mu = PTHREAD_MUTEX_INITIALIZER;
e2e_server hm_srv;
bool hm_srv_up;
atomic_ulong hm_srv_gen;
bool hm_own_server;
const char *hm_server_args[24];

pthread_rwlock_t hm_rec_lock = PTHREAD_RWLOCK_INITIALIZER;

static bool get_addr(char *host, size_t hl, char *port, size_t pl)
{
    pthread_mutex_lock(&hm_srv_mu);
    bool up = hm_srv_up;
    snprintf(host, hl, "%s", hm_srv.host);
    snprintf(port, pl, "%s", hm_srv.port);
    pthread_mutex_unlock(&hm_srv_mu);
    return up;
}

/* Connect to the current server, waiting while it is down.
 * @return 0, or -1 when aborting or it never came back. */
int hm_connect_retry(krappy_client *c, unsigned long *gen)
{
    uint64_t deadline = e2e_now_ms() + RECONNECT_LIMIT;
    for (;;) {
        if (atomic_load(&hm_aborting))
            return -1;
        char host[64], port[16];
        *gen = atomic_load(&hm_srv_gen);
        if (get_addr(host, sizeof host, port, sizeof port) &&
            krappy_connect(c, host, port) == KRAPPY_OK) {
            if (atomic_load(&hm_srv_gen) == *gen)
                return 0; /* to the server of that generation */
            krappy_close(c);
        }
        if (e2e_now_ms() > deadline) {
            hm_fail(C_ERRORS, "no server to connect to within %d s: %s", RECONNECT_LIMIT / 1000,
                    krappy_client_errmsg(c));
            atomic_store(&hm_aborting, 1);
            return -1;
        }
        hm_sleep_ms(2);
    }
}

/* A call failed locally (the connection is gone): expected only when the
 * server was killed since the connection was made. */
void hm_lost(krappy_client *c, unsigned long gen, const char *who, const char *what)
{
    if (atomic_load(&hm_srv_gen) == gen && !atomic_load(&hm_aborting))
        hm_fail(C_ERRORS, "%s: %s: connection lost with no kill: %s", who, what,
                krappy_client_errmsg(c));
    krappy_close(c);
}
/* STATS of the topic and the group on the server at host:port.
 * @return 0, or -1 (message on stderr when not quiet). */
int hm_group_stats(const e2e_server *s, hm_gstats *g, bool quiet)
{
    krappy_opts o = {.timeout_ms = CLIENT_TIMEOUT};
    krappy_client *c = krappy_client_new(&o);
    krappy_topic_stats *ts = NULL;
    int rc = -1;
    if (c == NULL)
        abort();
    if (krappy_connect(c, s->host, s->port) != KRAPPY_OK ||
        krappy_stats(c, hm_topic, GROUP, &ts) != KRAPPY_OK || ts->n_groups != 1) {
        if (!quiet)
            fprintf(stderr, "hammer: STATS failed: %s\n", krappy_client_errmsg(c));
        goto out;
    }
    g->next = ts->next;
    g->cursor = ts->groups[0].cursor;
    g->pending = ts->groups[0].pending;
    g->lag = ts->groups[0].lag;
    g->members = ts->groups[0].members;
    rc = 0;
out:
    krappy_topic_stats_free(ts);
    krappy_client_free(c);
    return rc;
}

int hm_current_stats(hm_gstats *g, bool quiet)
{
    pthread_mutex_lock(&hm_srv_mu);
    e2e_server s = hm_srv;
    pthread_mutex_unlock(&hm_srv_mu);
    return hm_group_stats(&s, g, quiet);
}
static char shim_log[400];

static void shim_env(const e2e_server *s, bool on)
{
    if (!on) {
        e2e_shim_off();
        return;
    }
    e2e_shim_on(s);
    snprintf(shim_log, sizeof shim_log, "%s/shim.log", s->dir);
}

int hm_start_server(e2e_server *s)
{
    if (!hm_opt.powercut)
        return e2e_start(s, hm_server_args);
    memset(s, 0, sizeof *s);
    e2e_tmp_template(s->dir, sizeof s->dir);
    if (mkdtemp(s->dir) == NULL)
        return -1;
    shim_env(s, true);
    int rc = e2e_restart(s, hm_server_args);
    shim_env(s, false);
    return rc;
}
double hm_restart_ms_total;
int hm_kills_done;
int hm_crashes_seen;

/*
 * kill -9 the server (and cut the power, with --powercut), restart it on
 * the same data, check what must have survived, then let clients at it.
 * With `dead`, the server has died by itself already (and was reaped).
 * @return 0, or -1 when the server does not come back.
 */
int hm_kill_and_restart(bool dead)
{
    pthread_mutex_lock(&hm_srv_mu);
    hm_srv_up = false;
    atomic_fetch_add(&hm_srv_gen, 1);
    e2e_server s = hm_srv;
    pthread_mutex_unlock(&hm_srv_mu);
    uint64_t t0 = e2e_now_ms();
    if (!dead) {
        kill(s.pid, SIGKILL);
        waitpid(s.pid, NULL, 0);
    }
    /* Every OK read so far was sent before the kill. */
    uint64_t durable = atomic_load(&hm_ack_cursor_max);
    if (hm_opt.powercut) {
        char cmd[900], out[4096];
        snprintf(cmd, sizeof cmd, "'%s' '%s' '%s/data' 2>&1", getenv("KRAPPY_POWERCUT"), shim_log,
                 s.dir);
        if (e2e_run(cmd, out, sizeof out) != 0) {
            fprintf(stderr, "hammer: powercut failed: %s\n", out);
            return -1;
        }
    }
    shim_env(&s, hm_opt.powercut);
    int rc = e2e_restart(&s, hm_server_args);
    shim_env(&s, false);
    if (rc < 0) {
        fprintf(stderr, "hammer: krappyd did not restart; log in %s\n", s.log_path);
        return -1;
    }
    char when[48];
    if (dead) {
        snprintf(when, sizeof when, "after crash %d", ++hm_crashes_seen);
    } else {
        hm_restart_ms_total += (double)(e2e_now_ms() - t0);
        hm_kills_done++;
        snprintf(when, sizeof when, "after kill %d", hm_kills_done);
    }
    hm_gstats g;
    if (hm_group_stats(&s, &g, false) < 0) {
        hm_fail(C_ERRORS, "STATS %s failed", when);
    } else {
        hm_check_run[C_CURSOR_DURABLE] = true;
        /* A power cut takes the stream's unsynced tail (events acknowledged
         * "write": the contract keeps only "sync" ones, checked on their
         * own), and an ACK of events there cannot outlive them: the cursor
         * comes back to the stream's end, whose offsets are reused. */
        uint64_t bound = hm_opt.powercut && g.next < durable ? g.next : durable;
        if (g.cursor < bound)
            hm_fail(C_CURSOR_DURABLE,
                    "%s the cursor is %" PRIu64 ", below %" PRIu64 " that an ACK's OK reported"
                    " (the stream ends at %" PRIu64 ")",
                    when, g.cursor, durable, g.next);
        if (hm_opt.powercut) {
            /* Events above the surviving stream are gone; their offsets
             * will be reused. Forget what members saw there. */
            pthread_rwlock_wrlock(&hm_rec_lock);
            uint64_t hi = atomic_load(&hm_acked_hi) + (uint64_t)hm_opt.batch * 64;
            for (uint64_t o = g.next; o < hi && o < hm_cap; o++) {
                hm_dval[o] = 0;
                hm_deliv[o] = 0;
            }
            pthread_rwlock_unlock(&hm_rec_lock);
            if (g.cursor > g.next)
                hm_fail(C_CURSOR_DURABLE,
                        "%s (power cut) the cursor %" PRIu64 " is beyond the stream's end %" PRIu64,
                        when, g.cursor, g.next);
        }
        hm_check_below_cursor(&hm_below_checked, g.cursor, when);
        hm_say("%s: restarted in %" PRIu64 " ms, next %" PRIu64 ", cursor %" PRIu64 " (>= %" PRIu64
               ")",
               when, e2e_now_ms() - t0, g.next, g.cursor, durable);
    }
    pthread_mutex_lock(&hm_srv_mu);
    hm_srv = s;
    hm_srv_up = true;
    pthread_mutex_unlock(&hm_srv_mu);
    return 0;
}

/*
 * A server that died without being killed is a failure: say how, show the
 * end of its log (a sanitizer's report), and restart it so that the run
 * can still check what survived. @return 0, or -1 when it stays down.
 */
int hm_watch_server(void)
{
    if (!hm_own_server)
        return 0;
    int status;
    pthread_mutex_lock(&hm_srv_mu);
    pid_t pid = hm_srv.pid;
    char log[300];
    snprintf(log, sizeof log, "%s", hm_srv.log_path);
    pthread_mutex_unlock(&hm_srv_mu);
    if (pid <= 0 || waitpid(pid, &status, WNOHANG) != pid)
        return 0;
    hm_check_run[C_EXIT] = true;
    hm_fail(C_EXIT, "krappyd died without being killed (%s %d); the end of its log:",
            WIFSIGNALED(status) ? "signal" : "exit status",
            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "{ grep -n -m1 -e 'ERROR: AddressSanitizer' -e 'runtime error' '%s' >/dev/null && "
             "sed -n '/ERROR: AddressSanitizer\\|runtime error/,$p' '%s' | grep -v '^  0x' | "
             "head -n 45; } || tail -n 20 '%s'",
             log, log, log);
    fflush(stderr);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log)\n");
    return hm_kill_and_restart(true);
}

/* Sleep until `t` (ms), watching the server. @return -1 when it is lost. */
int hm_sleep_until(uint64_t t)
{
    for (;;) {
        if (hm_watch_server() < 0)
            return -1;
        uint64_t now = e2e_now_ms();
        if (now >= t || atomic_load(&hm_aborting))
            return 0;
        hm_sleep_ms((unsigned)(t - now < 20 ? t - now : 20));
    }
}
