/*
 * e2e/harness.h - start a real krappyd and talk to it over raw sockets.
 *
 * Every server runs on 127.0.0.1 with port 0 (the kernel picks a free one,
 * read back through --port-file) and its own `mktemp -d` data directory,
 * which is removed when it stops. The binaries come from $KRAPPYD and
 * $KRAPPY (defaults: bin/krappyd, bin/krappy).
 *
 * With $KRAPPY_E2E_ADDR=HOST:PORT the suite talks to that running server
 * instead; tests that need to start servers with special flags, signal them
 * or read their memory then skip.
 */
#ifndef KR_E2E_HARNESS_H
#define KR_E2E_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/buf.h"
#include "proto/msg.h"

typedef struct e2e_server {
    pid_t pid; /* 0 for an external server */
    char host[64];
    char port[16];
    char http_port[16];  /* the admin port ("0" when off) */
    char kafka_port[16]; /* the Kafka port ("0" without --kafka-listen) */
    char dir[256];       /* temp directory (data, port file, log) */
    char log_path[300];
} e2e_server;

/* An external server from $KRAPPY_E2E_ADDR, or NULL. */
const char *e2e_external_addr(void);

/*
 * Start krappyd with extra arguments (NULL-terminated list, may be NULL).
 * Waits up to 10 s for it to listen. @return 0, or -1 (message on stderr).
 */
int e2e_start(e2e_server *s, const char *const *extra_args);

/* The soft and hard RLIMIT_NOFILE of the servers started from now on (the
 * test process keeps its own); 0, 0 leaves them as inherited. */
void e2e_set_nofile(unsigned long soft, unsigned long hard);

/* How long e2e_start and e2e_restart wait for the server to listen (0: the
 * default, 10 s): a start that recovers a large directory takes longer. */
void e2e_set_start_timeout(int ms);

/* Whether the server's log holds `text` (fixed, without single quotes). */
bool e2e_logged(const e2e_server *s, const char *text);

/* Open file descriptors of a process (entries of /proc/PID/fd), or -1. */
long e2e_pid_fds(pid_t pid);

/* Start krappyd again on the same directory (after e2e_stop or a kill):
 * same data, the log appended. @return 0, or -1. */
int e2e_restart(e2e_server *s, const char *const *extra_args);

/* Like e2e_start, or the external server when one is configured. */
int e2e_start_or_external(e2e_server *s);

/*
 * Stop a server with SIGTERM and wait up to `timeout_ms`; the directory is
 * removed unless keep is asked (e2e_stop_keep) or KRAPPY_E2E_KEEP is set.
 * @return its exit status (0..255), 128+signal if killed by one, or -1 when
 *         it did not exit in time (it is then killed with SIGKILL).
 */
int e2e_stop(e2e_server *s, int timeout_ms);
int e2e_stop_keep(e2e_server *s, int timeout_ms);

/* Wait up to timeout_ms for a server already signalled to exit (then
 * SIGKILL); its log's tail goes to stderr unless it exited 0. pid becomes
 * 0, the directory stays. @return as e2e_stop. */
int e2e_wait_exit(e2e_server *s, int timeout_ms);

/* Has the server exited by itself? Reaps it (pid becomes 0, the directory
 * stays). @return its exit status (128 + the signal when one ended it), or
 * -1 while it runs. */
int e2e_exited(e2e_server *s);

/* Resident set size of the server (of any process) in KiB, or -1. */
long e2e_rss_kib(const e2e_server *s);
long e2e_pid_rss_kib(pid_t pid);

/* CPU seconds (user + system) of process pid, all its threads - or, with
 * tid > 0, of its thread tid alone (the server's loop thread is its pid) -
 * from /proc; 0 when it cannot be read. */
double e2e_pid_cpu_s(pid_t pid, pid_t tid);

/* Minor page faults so far of process pid (all threads), or of its thread
 * tid > 0, from /proc; 0 when they cannot be read. */
double e2e_pid_minor_faults(pid_t pid, pid_t tid);

/* Wait until the server is idle - its CPU (all threads) under share of a
 * core over a window of window_ms - or max_ms at most, so that what is
 * measured next does not share the machine with its background work
 * (checkpoints, the view's compactions). */
void e2e_wait_idle(const e2e_server *s, int window_ms, double share, int max_ms);

/* The thread of process pid named comm (/proc/PID/task/TID/comm, as
 * pthread_setname_np set it). @return its tid, or -1 when none is. */
pid_t e2e_thread_named(pid_t pid, const char *comm);

/* A blocking TCP connection to the server. @return fd or -1. */
int e2e_connect(const e2e_server *s);

/* Send all bytes. @return 0 or -1. */
int e2e_send_all(int fd, const void *p, size_t n);

/* Send one frame with the given type and payload. @return 0 or -1. */
int e2e_send_frame(int fd, uint32_t type, const void *payload, size_t len);

/* A received frame: payload owned by the caller (free()). */
typedef struct e2e_frame {
    uint32_t type;
    uint8_t *payload;
    size_t len;
} e2e_frame;

/*
 * Read one whole frame within timeout_ms.
 * @return 1 on a frame; 0 when the server closed the connection cleanly
 *         before a frame began; -1 on timeout, reset or a torn frame.
 */
int e2e_recv_frame(int fd, e2e_frame *f, int timeout_ms);

/* 1 when the server has closed the connection (EOF or reset) within
 * timeout_ms, discarding anything it still sent; 0 otherwise. */
int e2e_wait_closed(int fd, int timeout_ms);

/*
 * Read one frame and check it is ERROR `code`; returns its message in msg.
 * @return 0 when it matches, -1 otherwise (details on stderr).
 */
int e2e_expect_error(int fd, int code, char *msg, size_t msglen);

/* Read one frame and check it is OK. @return 0 or -1. */
int e2e_expect_ok(int fd);

/* Run a shell command line, capturing up to outlen-1 bytes of stdout.
 * @return the exit status, or -1. */
int e2e_run(const char *cmd, char *out, size_t outlen);

/* A mkdtemp template for a server's directory: $TMPDIR (or /tmp) plus
 * krappy-e2e-PID-XXXXXX, PID this process's (or, in a forked child, its
 * parent's): suites that share a TMPDIR never pick the same names. */
void e2e_tmp_template(char *buf, size_t n);

/* rm -rf dir, but only a directory e2e_tmp_template named in this process
 * (or the one it was forked from): another run's directory, in a TMPDIR
 * shared with it, is refused with a message on stderr. */
void e2e_rm_tmp(const char *dir);

/* Whether the long variants run (KRAPPY_E2E_TORTURE set: `make torture`),
 * and whether this is the -O2 smoke run (KRAPPY_E2E_SMOKE set). A loop
 * longer than ~10 s in make test takes its count from e2e_torture(). */
bool e2e_torture(void);
bool e2e_smoke(void);

/* KRAPPY_E2E_ONLY=NAME runs only the tests NAME (a cmocka pattern, e.g.
 * test_kill9*) matches, in every e2e suite: e2e/suite.c sets cmocka's
 * filter before main. For debugging one test; make test never sets it. */

/*
 * The LD_PRELOAD fault shim ($KRAPPY_SHIM, tests/shim/krshim.c) for the next
 * server starts, with the layout every suite uses: it tracks s->dir/data,
 * logs to s->dir/shim.log and reads its rules from s->dir/faults.
 * @return 0, or -1 when $KRAPPY_SHIM is unset or unreadable.
 */
int e2e_shim_on(const e2e_server *s);
void e2e_shim_off(void);

/* Replace the shim's rules in s->dir/faults (written aside and renamed
 * over, as the shim wants). @return 0 or -1. */
int e2e_shim_faults(const e2e_server *s, const char *rules);

/* Start krappyd in a new directory (or again on s->dir: restart) under
 * the shim, with no fault rules for a start. @return 0, or -1 (also when
 * $KRAPPY_SHIM is unset). */
int e2e_start_shimmed(e2e_server *s, const char *const *extra_args);
int e2e_restart_shimmed(e2e_server *s, const char *const *extra_args);

/*
 * e2e_restart with ASan's quarantine of freed memory cut to 8 MiB for this
 * server (ASAN_OPTIONS is put back after): ASan keeps 256 MiB of freed
 * memory by default, which a test of the server's resident set would count
 * whatever the server holds. Harmless in builds without ASan.
 * @return as e2e_restart.
 */
int e2e_restart_small_quarantine(e2e_server *s, const char *const *extra_args);

/* The first metric family of a /metrics body (its "# TYPE" lines) that
 * docs/METRICS.md does not list, into name. @return true when there is
 * one; false when every family is listed, or the document cannot be read
 * (run from the repo root). */
bool e2e_metric_undocumented(const char *body, char *name, size_t len);

/* Whether the shim and the powercut tool are there ($KRAPPY_SHIM,
 * $KRAPPY_POWERCUT): the tests that need them skip otherwise. */
bool e2e_have_shim(void);

/* kill -9 the server and reap it. */
void e2e_kill9(e2e_server *s);

/* A power cut: kill -9, then $KRAPPY_POWERCUT cuts every file under
 * s->dir/data back to what the shim's log (s->dir/shim.log) says was made
 * durable. @return 0, or -1 (the tool failed or is not set). */
int e2e_powercut(e2e_server *s);

/* Path of the krappy CLI under test. */
const char *e2e_cli(void);

/*
 * A test's helper threads (producers, restarters, watchers) start and end
 * through these. A test that fails jumps out of its own frame (cmocka's
 * longjmp) while one may still run and write to that frame, which the next
 * test reuses: the failure would show as another test's crash. So every
 * test of a suite with helpers has e2e_after_test as its teardown
 * (cmocka_unit_test_teardown), which ends the suite (servers killed,
 * status 1) when a helper outlived its test, after saying so; the failure
 * above it is the one to read.
 */
int e2e_thread_start(pthread_t *th, void *(*fn)(void *), void *arg);
void e2e_thread_join(pthread_t th);
int e2e_after_test(void **state);

/* Into cmd: a shell pipeline that produces n events with new keys
 * (prefix0, prefix1, ...) and 100-byte values to topic through `krappy TARGET produce`
 * (TARGET: "-p PORT", "-h A,B,C"), its messages on stdout. */
void e2e_produce_new_keys_cmd(char *cmd, size_t len, int n, const char *prefix, const char *target,
                              const char *topic);

/* Milliseconds on a monotonic clock. */
uint64_t e2e_now_ms(void);

/*
 * e2e_events_in_order - check an EVENTS reply (FETCH, POLL; its type,
 * payload and len): its events' offsets run on from *expect, which
 * advances past them; *next (when not NULL) receives the reply's `next`.
 * @return the number of events, or -1 when the reply is not EVENTS with
 * events in that order (and `next`, when asked for).
 */
long e2e_events_in_order(uint32_t type, const uint8_t *payload, size_t len, uint64_t *expect,
                         uint64_t *next);

#endif
