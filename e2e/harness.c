/*
 * e2e/harness.c - process and socket helpers for the end-to-end suites.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/frame.h"
#include "util/byteorder.h"

uint64_t e2e_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

const char *e2e_external_addr(void)
{
    const char *a = getenv("KRAPPY_E2E_ADDR");
    return a != NULL && a[0] != '\0' ? a : NULL;
}

int e2e_shim_on(const e2e_server *s)
{
    const char *shim = getenv("KRAPPY_SHIM");
    if (shim == NULL || access(shim, R_OK) != 0)
        return -1;
    char path[300];
    setenv("LD_PRELOAD", shim, 1);
    snprintf(path, sizeof path, "%s/data", s->dir);
    setenv("KRAPPY_SHIM_ROOT", path, 1);
    snprintf(path, sizeof path, "%s/shim.log", s->dir);
    setenv("KRAPPY_SHIM_LOG", path, 1);
    snprintf(path, sizeof path, "%s/faults", s->dir);
    setenv("KRAPPY_SHIM_FAULTS", path, 1);
    /* The shim is not sanitized and is preloaded before ASan's runtime. */
    const char *asan = getenv("ASAN_OPTIONS");
    if (asan == NULL || strstr(asan, "verify_asan_link_order=0") == NULL) {
        char opts[1024];
        snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0", asan ? asan : "",
                 asan && asan[0] ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
    }
    return 0;
}

void e2e_shim_off(void)
{
    unsetenv("LD_PRELOAD");
}

int e2e_shim_faults(const e2e_server *s, const char *rules)
{
    char path[300], tmp[320];
    snprintf(path, sizeof path, "%s/faults", s->dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    int ok = fputs(rules, f) >= 0;
    ok = (fclose(f) == 0) && ok;
    return ok && rename(tmp, path) == 0 ? 0 : -1;
}

int e2e_restart_shimmed(e2e_server *s, const char *const *extra)
{
    if (e2e_shim_on(s) < 0)
        return -1;
    int rc = e2e_restart(s, extra);
    e2e_shim_off();
    return rc;
}

int e2e_restart_small_quarantine(e2e_server *s, const char *const *extra)
{
    const char *cur = getenv("ASAN_OPTIONS");
    char *was = cur != NULL ? strdup(cur) : NULL;
    char asan[1024];
    snprintf(asan, sizeof asan, "%s%squarantine_size_mb=8", was ? was : "", was ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    int rc = e2e_restart(s, extra);
    if (was != NULL)
        setenv("ASAN_OPTIONS", was, 1);
    else
        unsetenv("ASAN_OPTIONS");
    free(was);
    return rc;
}

int e2e_start_shimmed(e2e_server *s, const char *const *extra)
{
    memset(s, 0, sizeof *s);
    e2e_tmp_template(s->dir, sizeof s->dir);
    if (mkdtemp(s->dir) == NULL) {
        perror("e2e: mkdtemp");
        return -1;
    }
    if (e2e_shim_faults(s, "") < 0)
        return -1;
    return e2e_restart_shimmed(s, extra);
}

bool e2e_have_shim(void)
{
    return getenv("KRAPPY_SHIM") != NULL && getenv("KRAPPY_POWERCUT") != NULL;
}

void e2e_kill9(e2e_server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

int e2e_powercut(e2e_server *s)
{
    const char *tool = getenv("KRAPPY_POWERCUT");
    if (tool == NULL)
        return -1;
    e2e_kill9(s);
    char cmd[900], out[8192];
    snprintf(cmd, sizeof cmd, "%s %s/shim.log %s/data", tool, s->dir, s->dir);
    return e2e_run(cmd, out, sizeof out) == 0 ? 0 : -1;
}

const char *e2e_cli(void)
{
    const char *p = getenv("KRAPPY");
    return p ? p : "bin/krappy";
}

void e2e_produce_new_keys_cmd(char *cmd, size_t len, int n, const char *prefix, const char *target,
                              const char *topic)
{
    /* awk's complaint about the pipe a refusal closes is not the test's. */
    snprintf(cmd, len,
             "awk 'BEGIN { v = sprintf(\"%%100s\", \"\"); gsub(/ /, \"v\", v); "
             "for (i = 0; i < %d; i++) printf \"%s%%d\\t%%s\\n\", i, v }' 2>/dev/null | "
             "%s %s produce %s 2>&1",
             n, prefix, e2e_cli(), target, topic);
}

/* Every server this process started. A failed test jumps out before it
 * stops its server: at exit, whatever is still running is killed, so no
 * krappyd outlives the suite (and holds its output pipe open). */
static pid_t started[512];
static size_t n_started;

/* SIGKILL every server still running; reap them when `reap`. */
static void kill_servers(bool reap)
{
    for (size_t i = 0; i < n_started; i++) {
        /* 0: our child, still running. -1 (ECHILD): already reaped, and
         * the number may now be someone else's: leave it. */
        if (waitpid(started[i], NULL, WNOHANG) == 0) {
            kill(started[i], SIGKILL);
            if (reap)
                waitpid(started[i], NULL, 0);
        }
    }
}

static void kill_leftovers(void)
{
    kill_servers(true);
}

/* An abort (ASan's report, an assertion on another thread) skips atexit:
 * the servers are killed from the signal (waitpid and kill are safe
 * there), then it ends the process as it would have. Left running, a
 * cluster's nodes went on for hours under the next runs. */
static void on_abort(int sig)
{
    kill_leftovers();
    raise(sig); /* the handler was reset (SA_RESETHAND): the default now */
}

static atomic_int helpers; /* e2e_thread_start'ed, not yet joined */

int e2e_thread_start(pthread_t *th, void *(*fn)(void *), void *arg)
{
    int rc = pthread_create(th, NULL, fn, arg);
    if (rc == 0)
        atomic_fetch_add(&helpers, 1);
    return rc;
}

void e2e_thread_join(pthread_t th)
{
    pthread_join(th, NULL);
    atomic_fetch_sub(&helpers, 1);
}

int e2e_after_test(void **state)
{
    (void)state;
    int left = atomic_load(&helpers);
    if (left == 0)
        return 0;
    fprintf(stderr,
            "e2e: the test failed with %d helper thread%s still running, which would write "
            "into the next test's memory: the suite ends here (the failure above is the one to "
            "read)\n",
            left, left == 1 ? "" : "s");
    fflush(NULL);
    kill_servers(false); /* no waiting: the helper runs on meanwhile */
    _exit(1);
}

static void remember(pid_t pid)
{
    if (n_started == 0) {
        atexit(kill_leftovers);
        struct sigaction sa = {.sa_handler = on_abort, .sa_flags = SA_RESETHAND};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGABRT, &sa, NULL);
    }
    if (n_started < sizeof started / sizeof started[0])
        started[n_started++] = pid;
}

bool e2e_torture(void)
{
    return getenv("KRAPPY_E2E_TORTURE") != NULL;
}

bool e2e_smoke(void)
{
    return getenv("KRAPPY_E2E_SMOKE") != NULL;
}

/* "/krappy-e2e-PID-": what this process's directories are named (the pid
 * taken once, so that a forked child names and removes them the same). */
static const char *tmp_tag(void)
{
    static char tag[40];
    if (tag[0] == '\0')
        snprintf(tag, sizeof tag, "/krappy-e2e-%d-", (int)getpid());
    return tag;
}

void e2e_tmp_template(char *buf, size_t n)
{
    const char *t = getenv("TMPDIR");
    snprintf(buf, n, "%s%sXXXXXX", t != NULL && t[0] == '/' ? t : "/tmp", tmp_tag());
}

void e2e_rm_tmp(const char *dir)
{
    if (dir[0] != '/' || strchr(dir, '\'') != NULL)
        return;
    if (strstr(dir, tmp_tag()) == NULL) {
        fprintf(stderr, "e2e: refusing to remove %s: this run did not make it\n", dir);
        return;
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "e2e: could not remove %s\n", dir);
}

int e2e_start(e2e_server *s, const char *const *extra)
{
    memset(s, 0, sizeof *s);
    e2e_tmp_template(s->dir, sizeof s->dir);
    if (mkdtemp(s->dir) == NULL) {
        perror("e2e: mkdtemp");
        return -1;
    }
    return e2e_restart(s, extra);
}

static unsigned long child_nofile_soft, child_nofile_hard;
static int start_timeout_ms;

void e2e_set_start_timeout(int ms)
{
    start_timeout_ms = ms;
}

void e2e_set_nofile(unsigned long soft, unsigned long hard)
{
    child_nofile_soft = soft;
    child_nofile_hard = hard;
}

bool e2e_logged(const e2e_server *s, const char *text)
{
    char cmd[1024], out[16];
    if (strchr(text, '\'') != NULL ||
        snprintf(cmd, sizeof cmd, "grep -c -F -- '%s' '%s'", text, s->log_path) >= (int)sizeof cmd)
        return false;
    return e2e_run(cmd, out, sizeof out) == 0 && atoi(out) > 0;
}

long e2e_pid_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Start krappyd on s->dir (its data, port file and log, appended). */
int e2e_restart(e2e_server *s, const char *const *extra)
{
    char data[300], portfile[300], rocks_log[300];
    snprintf(data, sizeof data, "%s/data", s->dir);
    snprintf(portfile, sizeof portfile, "%s/port", s->dir);
    /* RocksDB's LOG goes to /dev/shm by default, named after the data
     * directory: every test server left one there for good (23,000 files,
     * 457 MB of memory after a day of runs, and each start listed them all).
     * In the server's own directory it goes with it; still off the data
     * directory, which e2e_disk fills. A test's own flag wins. */
    snprintf(rocks_log, sizeof rocks_log, "%s/rocksdb-log", s->dir);
    if (mkdir(rocks_log, 0755) < 0 && errno != EEXIST)
        fprintf(stderr, "e2e: mkdir %s: %s\n", rocks_log, strerror(errno));
    snprintf(s->log_path, sizeof s->log_path, "%s/krappyd.log", s->dir);
    unlink(portfile);

    const char *bin = getenv("KRAPPYD");
    if (bin == NULL)
        bin = "bin/krappyd";
    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--data";
    argv[n++] = data;
    argv[n++] = "--port-file";
    argv[n++] = portfile;
    argv[n++] = "--log-level";
    argv[n++] = "debug";
    argv[n++] = "--http"; /* an admin port of its own: servers run side by side */
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--rocksdb-log-dir";
    argv[n++] = rocks_log;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;

    pid_t pid = fork();
    if (pid < 0) {
        perror("e2e: fork");
        return -1;
    }
    if (pid == 0) {
        int fd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        if (child_nofile_hard > 0) {
            struct rlimit rl = {child_nofile_soft, child_nofile_hard};
            if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                fprintf(stderr, "e2e: setrlimit(%lu, %lu): %s\n", child_nofile_soft,
                        child_nofile_hard, strerror(errno));
        }
        execv(bin, (char *const *)argv);
        fprintf(stderr, "e2e: cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    s->pid = pid;
    remember(pid);
    snprintf(s->host, sizeof s->host, "127.0.0.1");

    int wait_ms = start_timeout_ms > 0 ? start_timeout_ms : 10000;
    uint64_t deadline = e2e_now_ms() + (uint64_t)wait_ms;
    while (e2e_now_ms() < deadline) {
        FILE *f = fopen(portfile, "r");
        if (f != NULL) {
            unsigned port = 0, http = 0, kafka = 0;
            int got = fscanf(f, "%u %u %u", &port, &http, &kafka);
            fclose(f);
            if (got >= 1 && port > 0) {
                snprintf(s->port, sizeof s->port, "%u", port);
                snprintf(s->http_port, sizeof s->http_port, "%u", http);
                snprintf(s->kafka_port, sizeof s->kafka_port, "%u", kafka);
                return 0;
            }
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "e2e: krappyd exited before listening (status %d); log in %s\n",
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1, s->log_path);
            s->pid = 0;
            return -1;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "e2e: krappyd did not listen within %d ms; log in %s\n", wait_ms, s->log_path);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    s->pid = 0;
    return -1;
}

int e2e_start_or_external(e2e_server *s)
{
    const char *addr = e2e_external_addr();
    if (addr == NULL)
        return e2e_start(s, NULL);
    memset(s, 0, sizeof *s);
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof s->host) {
        fprintf(stderr, "e2e: KRAPPY_E2E_ADDR must be HOST:PORT\n");
        return -1;
    }
    memcpy(s->host, addr, (size_t)(colon - addr));
    snprintf(s->port, sizeof s->port, "%s", colon + 1);
    return 0;
}

int e2e_wait_exit(e2e_server *s, int timeout_ms)
{
    uint64_t deadline = e2e_now_ms() + (uint64_t)timeout_ms;
    int status = 0, rc = -1;
    for (;;) {
        pid_t w = waitpid(s->pid, &status, WNOHANG);
        if (w == s->pid) {
            rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            break;
        }
        if (e2e_now_ms() > deadline) {
            fprintf(stderr, "e2e: krappyd did not exit within %d ms of SIGTERM\n", timeout_ms);
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            break;
        }
        sleep_ms(5);
    }
    if (rc != 0) {
        fprintf(stderr, "e2e: krappyd exit status %d; its log:\n", rc);
        char cmd[400];
        snprintf(cmd, sizeof cmd, "tail -n 30 '%s' >&2", s->log_path);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
    }
    s->pid = 0;
    return rc;
}

int e2e_exited(e2e_server *s)
{
    int status = 0;
    if (s->pid <= 0 || waitpid(s->pid, &status, WNOHANG) != s->pid)
        return -1;
    s->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int stop(e2e_server *s, int timeout_ms, bool keep);

int e2e_stop(e2e_server *s, int timeout_ms)
{
    return stop(s, timeout_ms, false);
}

int e2e_stop_keep(e2e_server *s, int timeout_ms)
{
    return stop(s, timeout_ms, true);
}

static int stop(e2e_server *s, int timeout_ms, bool keep)
{
    if (s->pid <= 0) {
        if (!keep && getenv("KRAPPY_E2E_KEEP") == NULL)
            e2e_rm_tmp(s->dir);
        return 0;
    }
    kill(s->pid, SIGTERM);
    int rc = e2e_wait_exit(s, timeout_ms);
    s->pid = 0;
    if (!keep && getenv("KRAPPY_E2E_KEEP") == NULL)
        e2e_rm_tmp(s->dir);
    return rc;
}

long e2e_rss_kib(const e2e_server *s)
{
    return e2e_pid_rss_kib(s->pid);
}

long e2e_pid_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* The fields of /proc/PID[/task/TID]/stat after the command name (which
 * may hold spaces), into buf. @return them, or NULL when unreadable. */
static const char *proc_stat(pid_t pid, pid_t tid, char *buf, size_t len)
{
    if (pid <= 0)
        return NULL;
    char path[96];
    if (tid > 0)
        snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)tid);
    else
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' ? p + 2 : NULL;
}

double e2e_pid_cpu_s(pid_t pid, pid_t tid)
{
    char buf[1024];
    const char *p = proc_stat(pid, tid, buf, sizeof buf);
    unsigned long ut = 0, st = 0;
    if (p == NULL ||
        sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

double e2e_pid_minor_faults(pid_t pid, pid_t tid)
{
    char buf[1024];
    const char *p = proc_stat(pid, tid, buf, sizeof buf);
    unsigned long minflt = 0;
    if (p == NULL || sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %lu", &minflt) != 1)
        return 0;
    return (double)minflt;
}

void e2e_wait_idle(const e2e_server *s, int window_ms, double share, int max_ms)
{
    double prev = e2e_pid_cpu_s(s->pid, 0);
    for (int waited = 0; waited < max_ms; waited += window_ms) {
        usleep((useconds_t)window_ms * 1000);
        double now = e2e_pid_cpu_s(s->pid, 0);
        if (now - prev < share * window_ms / 1000.0)
            return;
        prev = now;
    }
}

pid_t e2e_thread_named(pid_t pid, const char *comm)
{
    char path[320], name[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    pid_t tid = -1;
    size_t len = strlen(comm);
    struct dirent *e;
    while (tid < 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%s/comm", (int)pid, e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fgets(name, sizeof name, f) != NULL && strcspn(name, "\n") == len &&
            strncmp(name, comm, len) == 0)
            tid = (pid_t)atoi(e->d_name);
        fclose(f);
    }
    closedir(d);
    return tid;
}

int e2e_connect(const e2e_server *s)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    if (getaddrinfo(s->host, s->port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

int e2e_send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int e2e_send_frame(int fd, uint32_t type, const void *payload, size_t len)
{
    uint8_t hdr[KRAPPY_FRAME_HEADER_BYTES];
    kr_frame_put_header(hdr, type, len);
    if (e2e_send_all(fd, hdr, sizeof hdr) < 0)
        return -1;
    return len ? e2e_send_all(fd, payload, len) : 0;
}

/* Read exactly n bytes before the deadline. @return n, 0 on EOF at the
 * start, -1 otherwise. */
static int read_exact(int fd, uint8_t *p, size_t n, uint64_t deadline)
{
    size_t got = 0;
    while (got < n) {
        int left = (int)(deadline > e2e_now_ms() ? deadline - e2e_now_ms() : 0);
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return -1;
        ssize_t r = recv(fd, p + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return got == 0 ? 0 : -1;
        if (r < 0)
            return -1;
        got += (size_t)r;
    }
    return 1;
}

int e2e_recv_frame(int fd, e2e_frame *f, int timeout_ms)
{
    uint64_t deadline = e2e_now_ms() + (uint64_t)timeout_ms;
    uint8_t hdr[KRAPPY_FRAME_HEADER_BYTES];
    memset(f, 0, sizeof *f);
    int rc = read_exact(fd, hdr, sizeof hdr, deadline);
    if (rc <= 0)
        return rc;
    uint32_t size = kr_get_be32(hdr);
    if (size < 4 || size > (64u << 20))
        return -1;
    f->type = kr_get_be32(hdr + 4);
    f->len = size - 4;
    f->payload = malloc(f->len ? f->len : 1);
    if (f->payload == NULL)
        return -1;
    if (f->len > 0 && read_exact(fd, f->payload, f->len, deadline) != 1) {
        free(f->payload);
        f->payload = NULL;
        return -1;
    }
    return 1;
}

int e2e_wait_closed(int fd, int timeout_ms)
{
    uint64_t deadline = e2e_now_ms() + (uint64_t)timeout_ms;
    uint8_t buf[65536];
    for (;;) {
        uint64_t now = e2e_now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, (int)(deadline - now));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return 0;
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
            return 1;
    }
}

int e2e_expect_error(int fd, int code, char *msg, size_t msglen)
{
    e2e_frame f;
    int rc = e2e_recv_frame(fd, &f, 5000);
    if (rc != 1) {
        fprintf(stderr, "e2e: expected ERROR %s, got %s\n", krappy_err_name(code),
                rc == 0 ? "a closed connection" : "no frame");
        return -1;
    }
    kr_reply r;
    kr_error_in e;
    int ok = f.type == KRAPPY_T_ERROR && kr_reply_decode(f.type, f.payload, f.len, &r) == 0 &&
             kr_reply_error(&r, &e) == 0 && e.code == code;
    if (ok && msg != NULL && msglen > 0) {
        size_t n = e.message.len < msglen - 1 ? e.message.len : msglen - 1;
        memcpy(msg, e.message.ptr, n);
        msg[n] = '\0';
    }
    if (!ok) {
        if (f.type == KRAPPY_T_ERROR && kr_reply_decode(f.type, f.payload, f.len, &r) == 0 &&
            kr_reply_error(&r, &e) == 0)
            fprintf(stderr, "e2e: expected ERROR %s, got ERROR %s: %.*s\n", krappy_err_name(code),
                    krappy_err_name(e.code), (int)e.message.len, (const char *)e.message.ptr);
        else
            fprintf(stderr, "e2e: expected ERROR %s, got frame type %u\n", krappy_err_name(code),
                    f.type);
    }
    free(f.payload);
    return ok ? 0 : -1;
}

int e2e_expect_ok(int fd)
{
    e2e_frame f;
    if (e2e_recv_frame(fd, &f, 5000) != 1)
        return -1;
    int ok = f.type == KRAPPY_T_OK;
    if (!ok)
        fprintf(stderr, "e2e: expected OK, got frame type %u\n", f.type);
    free(f.payload);
    return ok ? 0 : -1;
}

int e2e_run(const char *cmd, char *out, size_t outlen)
{
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    size_t n = 0;
    if (out != NULL && outlen > 0) {
        n = fread(out, 1, outlen - 1, p);
        out[n] = '\0';
    } else {
        char sink[4096];
        while (fread(sink, 1, sizeof sink, p) > 0)
            ;
    }
    int status = pclose(p);
    if (status < 0 || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

long e2e_events_in_order(uint32_t type, const uint8_t *payload, size_t len, uint64_t *expect,
                         uint64_t *next)
{
    kr_reply r;
    kr_cbor_item events, ev;
    if (type != KRAPPY_T_EVENTS || kr_reply_decode(type, payload, len, &r) < 0 ||
        kr_cbor_map_find(&r.map, "events", &events) != 1)
        return -1;
    kr_cbor_iter it;
    kr_cbor_iter_init(&it, &events);
    long n = 0;
    while (kr_cbor_iter_next(&it, &ev) == 1) {
        kr_event_view v;
        if (kr_event_view_read(&ev, &v) < 0 || v.offset != *expect)
            return -1;
        ++*expect;
        n++;
    }
    if (next != NULL && kr_reply_uint(&r, "next", next) != 1)
        return -1;
    return n;
}

bool e2e_metric_undocumented(const char *body, char *name, size_t len)
{
    FILE *doc = fopen("docs/METRICS.md", "r");
    if (doc == NULL)
        return false;
    static char md[1 << 17];
    size_t mdn = fread(md, 1, sizeof md - 1, doc);
    md[mdn] = '\0';
    fclose(doc);
    for (const char *t = strstr(body, "# TYPE "); t != NULL; t = strstr(t + 1, "# TYPE ")) {
        char fam[128], want[132];
        if (sscanf(t + 7, "%127s", fam) != 1)
            continue;
        snprintf(want, sizeof want, "`%s`", fam);
        if (strstr(md, want) == NULL) {
            snprintf(name, len, "%s", fam);
            return true;
        }
    }
    return false;
}
