/*
 * e2e/bench/vs/util.c - what every backend of bench_vs shares: the event
 * sequence, clocks, CPU meters, and starting and stopping server processes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../harness.h"
#include "vs.h"

uint64_t vs_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double vs_now_s(void)
{
    return (double)vs_now_ns() / 1e9;
}

void vs_sleep_until_tick(uint64_t t0, uint64_t due)
{
    uint64_t now = vs_now_ns();
    if (due <= now)
        return;
    static __thread bool slack_set; /* a syscall once per thread, not per sleep */
    if (!slack_set) {
        prctl(PR_SET_TIMERSLACK, 1000UL);
        slack_set = true;
    }
    uint64_t at = t0 + (due - t0 + VS_TICK_NS - 1) / VS_TICK_NS * VS_TICK_NS;
    struct timespec ts = {(time_t)(at / 1000000000u), (long)(at % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

void vs_meter_start(vs_meter *m)
{
    m->srv0 = e2e_pid_cpu_s(m->server, 0);
    m->cli0 = self_cpu_s();
    m->t0 = vs_now_s();
}

void vs_meter_stop(vs_meter *m)
{
    m->t1 = vs_now_s();
    m->cli1 = self_cpu_s();
    m->srv1 = e2e_pid_cpu_s(m->server, 0);
}

void vs_lat_add(vs_meter *m, uint64_t ns)
{
    if (m->nlat == m->caplat) {
        size_t cap = m->caplat ? m->caplat * 2 : 65536;
        uint64_t *p = realloc(m->lat, cap * sizeof *p);
        if (p == NULL)
            return; /* a sample lost is better than a crash mid-run */
        m->lat = p;
        m->caplat = cap;
    }
    m->lat[m->nlat++] = ns;
}

/* splitmix64: a good spread from a counter, so any thread can compute the
 * key of any event without shared state. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint32_t vs_key_of(long keys, uint64_t n)
{
    return (uint32_t)(mix(n) % (uint64_t)keys);
}

uint32_t vs_read_key(const vs_params *p, long i)
{
    uint64_t n = vs_key_of(p->events, 0x72656164ull << 32 | (uint64_t)i); /* "read" */
    return vs_key_of(p->keys, n);
}

void vs_key(char *out, uint32_t k)
{
    snprintf(out, VS_KEY_LEN + 1, "key-%011u", k);
}

void vs_value(char *out, uint64_t n, uint64_t ts)
{
    int w = snprintf(out, VS_VALUE_LEN + 1, "%020llu%020llu", (unsigned long long)n,
                     (unsigned long long)ts);
    memset(out + w, 'v', VS_VALUE_LEN - (size_t)w);
    out[VS_VALUE_LEN] = '\0';
}

static int digits20(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

int vs_value_parse(const void *v, size_t len, uint64_t *n, uint64_t *ts)
{
    const char *s = v;
    uint64_t a, b;
    if (len != VS_VALUE_LEN || digits20(s, &a) < 0 || digits20(s + 20, &b) < 0)
        return -1;
    if (n != NULL)
        *n = a;
    if (ts != NULL)
        *ts = b;
    return 0;
}

int vs_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

int vs_mkdtemp(char *out, size_t n)
{
    e2e_tmp_template(out, n);
    return mkdtemp(out) == NULL ? -1 : 0;
}

pid_t vs_spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    setpgid(0, 0);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0)
        dup2(null, 0);
    execvp(argv[0], argv);
    fprintf(stderr, "bench_vs: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int vs_wait_port(const char *host, int port, pid_t pid, int timeout_ms)
{
    uint64_t end = vs_now_ns() + (uint64_t)timeout_ms * 1000000u;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return -1;
    while (vs_now_ns() < end) {
        if (pid > 0 && waitpid(pid, NULL, WNOHANG) == pid)
            return -1; /* it exited */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return -1;
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return 0;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

void vs_kill(pid_t pid, int timeout_ms)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    uint64_t end = vs_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (vs_now_ns() < end) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            return;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int vs_fail(vs_ctx *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err, sizeof x->err, fmt, ap);
    va_end(ap);
    return VS_FAIL;
}

const char *vs_program(const char *env, const char *const *candidates)
{
    const char *e = env != NULL ? getenv(env) : NULL;
    if (e != NULL && e[0] != '\0')
        return access(e, X_OK) == 0 ? e : NULL;
    for (size_t i = 0; candidates[i] != NULL; i++)
        if (access(candidates[i], X_OK) == 0)
            return candidates[i];
    return NULL;
}
