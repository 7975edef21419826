/*
 * e2e/proxy.c - the cluster tests' TCP proxy (see proxy.h): one thread, one
 * poll loop over the listener, a wake-up pipe and both sockets of every
 * connection; per direction a queue of chunks, each due at a time (now,
 * or now + the sender's delay).
 */
#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "util/byteorder.h"

#define PX_MAX_CONNS  64
#define PX_MAX_RULES  8
#define PX_CHUNK      (64 * 1024)
#define PX_QUEUE_MAX  (8u << 20) /* bytes queued per direction before it stops reading */
#define PX_HEAD_BYTES 16         /* the handshake's fixed part: magic .. sender id */

typedef struct chunk {
    uint64_t due;
    size_t len, off;
    struct chunk *next;
    uint8_t data[];
} chunk;

/* One direction of a connection: from `in` to `out`. */
typedef struct dir {
    chunk *head, *tail;
    size_t queued;
    bool eof; /* `in` ended: shut `out` down once the queue is empty */
} dir;

typedef struct conn {
    int cfd, sfd; /* the sender's side, the node's side */
    uint64_t from;
    uint8_t head[PX_HEAD_BYTES];
    size_t head_got;
    dir up, down; /* sender -> node, node -> sender */
} conn;

typedef struct rule {
    uint64_t from;
    bool cut;
    unsigned delay_ms;
} rule;

struct e2e_proxy {
    int lfd, port, target;
    int wake[2];
    pthread_t th;
    pthread_mutex_t mu;
    bool stop;
    rule rules[PX_MAX_RULES];
    unsigned n_rules;
    uint64_t bytes;
    conn *conns[PX_MAX_CONNS];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The rule for sender `from` (a rule for 0 applies to all). Under mu. */
static void rule_for(const e2e_proxy *p, uint64_t from, bool *cut, unsigned *delay)
{
    *cut = false;
    *delay = 0;
    for (unsigned i = 0; i < p->n_rules; i++) {
        const rule *r = &p->rules[i];
        if (r->from != 0 && r->from != from)
            continue;
        *cut |= r->cut;
        if (r->delay_ms > *delay)
            *delay = r->delay_ms;
    }
}

static rule *rule_of(e2e_proxy *p, uint64_t from)
{
    for (unsigned i = 0; i < p->n_rules; i++)
        if (p->rules[i].from == from)
            return &p->rules[i];
    if (p->n_rules == PX_MAX_RULES)
        return NULL;
    rule *r = &p->rules[p->n_rules++];
    *r = (rule){.from = from};
    return r;
}

static void poke(e2e_proxy *p)
{
    char b = 1;
    (void)!write(p->wake[1], &b, 1);
}

/* Set the cut (cut >= 0) or the delay (ms >= 0) of sender `from`'s rule. */
static void set_rule(e2e_proxy *p, uint64_t from, int cut, long ms)
{
    pthread_mutex_lock(&p->mu);
    rule *r = rule_of(p, from);
    if (r != NULL && cut >= 0)
        r->cut = cut != 0;
    if (r != NULL && ms >= 0)
        r->delay_ms = (unsigned)ms;
    pthread_mutex_unlock(&p->mu);
    poke(p);
}

void e2e_proxy_cut(e2e_proxy *p, uint64_t from, bool cut)
{
    set_rule(p, from, cut, -1);
}

void e2e_proxy_delay(e2e_proxy *p, uint64_t from, unsigned ms)
{
    set_rule(p, from, -1, ms);
}

void e2e_proxy_heal(e2e_proxy *p)
{
    pthread_mutex_lock(&p->mu);
    p->n_rules = 0;
    pthread_mutex_unlock(&p->mu);
    poke(p);
}

uint64_t e2e_proxy_bytes(e2e_proxy *p)
{
    pthread_mutex_lock(&p->mu);
    uint64_t b = p->bytes;
    pthread_mutex_unlock(&p->mu);
    return b;
}

int e2e_proxy_port(const e2e_proxy *p)
{
    return p->port;
}

static void dir_free(dir *d)
{
    while (d->head != NULL) {
        chunk *c = d->head;
        d->head = c->next;
        free(c);
    }
    d->tail = NULL;
    d->queued = 0;
}

static void conn_close(e2e_proxy *p, int i)
{
    conn *c = p->conns[i];
    close(c->cfd);
    if (c->sfd >= 0)
        close(c->sfd);
    dir_free(&c->up);
    dir_free(&c->down);
    free(c);
    p->conns[i] = NULL;
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void on_accept(e2e_proxy *p)
{
    int cfd = accept(p->lfd, NULL, NULL);
    if (cfd < 0)
        return;
    int slot = -1;
    for (int i = 0; i < PX_MAX_CONNS && slot < 0; i++)
        if (p->conns[i] == NULL)
            slot = i;
    int sfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)p->target),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    conn *c = slot >= 0 ? calloc(1, sizeof *c) : NULL;
    /* A blocking connect on loopback: refused at once when the node is down. */
    if (c == NULL || sfd < 0 || connect(sfd, (struct sockaddr *)&a, sizeof a) < 0) {
        free(c);
        close(cfd);
        if (sfd >= 0)
            close(sfd);
        return;
    }
    set_nonblock(cfd);
    set_nonblock(sfd);
    c->cfd = cfd;
    c->sfd = sfd;
    p->conns[slot] = c;
}

/* Read what `in` has into d, due after the sender's delay. @return -1 when
 * `in` failed (the connection goes). */
static int pull(e2e_proxy *p, conn *c, int in, dir *d, bool up)
{
    if (d->eof || d->queued >= PX_QUEUE_MAX)
        return 0;
    chunk *k = malloc(sizeof *k + PX_CHUNK);
    if (k == NULL)
        return 0;
    ssize_t n = recv(in, k->data, PX_CHUNK, 0);
    if (n <= 0) {
        free(k);
        if (n == 0) {
            d->eof = true;
            return 0;
        }
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    }
    if (up && c->head_got < PX_HEAD_BYTES) {
        size_t take =
            (size_t)n < PX_HEAD_BYTES - c->head_got ? (size_t)n : PX_HEAD_BYTES - c->head_got;
        memcpy(c->head + c->head_got, k->data, take);
        c->head_got += take;
        if (c->head_got == PX_HEAD_BYTES && memcmp(c->head, "KRFT", 4) == 0)
            c->from = kr_get_be64(c->head + 8);
    }
    bool cut;
    unsigned delay;
    pthread_mutex_lock(&p->mu);
    rule_for(p, c->from, &cut, &delay);
    pthread_mutex_unlock(&p->mu);
    k->len = (size_t)n;
    k->off = 0;
    k->due = now_ms() + delay;
    k->next = NULL;
    if (d->tail != NULL)
        d->tail->next = k;
    else
        d->head = k;
    d->tail = k;
    d->queued += (size_t)n;
    return 0;
}

/* Write what is due of d to `out`. @return -1 when `out` failed. */
static int push(e2e_proxy *p, dir *d, int out, uint64_t now)
{
    while (d->head != NULL && d->head->due <= now) {
        chunk *k = d->head;
        ssize_t n = send(out, k->data + k->off, k->len - k->off, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        k->off += (size_t)n;
        d->queued -= (size_t)n;
        pthread_mutex_lock(&p->mu);
        p->bytes += (uint64_t)n;
        pthread_mutex_unlock(&p->mu);
        if (k->off < k->len)
            return 0;
        d->head = k->next;
        if (d->head == NULL)
            d->tail = NULL;
        free(k);
    }
    if (d->head == NULL && d->eof)
        shutdown(out, SHUT_WR);
    return 0;
}

static void *proxy_main(void *arg)
{
    e2e_proxy *p = arg;
    struct pollfd pfd[2 + 2 * PX_MAX_CONNS];
    int owner[2 + 2 * PX_MAX_CONNS];
    for (;;) {
        pthread_mutex_lock(&p->mu);
        bool stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        uint64_t now = now_ms();
        int timeout = 200;
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
        for (int i = 0; i < PX_MAX_CONNS; i++) {
            conn *c = p->conns[i];
            if (c == NULL)
                continue;
            bool cut;
            unsigned delay;
            pthread_mutex_lock(&p->mu);
            rule_for(p, c->from, &cut, &delay);
            pthread_mutex_unlock(&p->mu);
            if (cut || (c->up.eof && c->down.eof && c->up.head == NULL && c->down.head == NULL)) {
                conn_close(p, i);
                continue;
            }
            for (int side = 0; side < 2; side++) {
                dir *in = side == 0 ? &c->up : &c->down, *out = side == 0 ? &c->down : &c->up;
                short ev = 0;
                if (!in->eof && in->queued < PX_QUEUE_MAX)
                    ev |= POLLIN;
                if (out->head != NULL && out->head->due <= now)
                    ev |= POLLOUT;
                else if (out->head != NULL && (int)(out->head->due - now) < timeout)
                    timeout = (int)(out->head->due - now);
                owner[n] = i;
                pfd[n++] = (struct pollfd){.fd = side == 0 ? c->cfd : c->sfd, .events = ev};
            }
        }
        if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR)
            break;
        if (pfd[0].revents & POLLIN) {
            on_accept(p);
            /* A cut link is refused: the new connection goes at the next turn. */
        }
        if (pfd[1].revents & POLLIN) {
            char buf[64];
            (void)!read(p->wake[0], buf, sizeof buf);
        }
        now = now_ms();
        for (int k = 2; k < n; k += 2) {
            int i = owner[k];
            conn *c = p->conns[i];
            if (c == NULL)
                continue;
            int bad = 0;
            if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
                bad |= pull(p, c, c->cfd, &c->up, true);
            if (pfd[k + 1].revents & (POLLIN | POLLHUP | POLLERR))
                bad |= pull(p, c, c->sfd, &c->down, false);
            bad |= push(p, &c->up, c->sfd, now);
            bad |= push(p, &c->down, c->cfd, now);
            if (bad)
                conn_close(p, i);
        }
    }
    return NULL;
}

e2e_proxy *e2e_proxy_start(int target_port)
{
    e2e_proxy *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->target = target_port;
    pthread_mutex_init(&p->mu, NULL);
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int one = 1;
    setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(p->lfd, (struct sockaddr *)&a, &len) < 0 || listen(p->lfd, 64) < 0 ||
        pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        fprintf(stderr, "e2e proxy: cannot listen: %s\n", strerror(errno));
        if (p->lfd >= 0)
            close(p->lfd);
        free(p);
        return NULL;
    }
    p->port = ntohs(a.sin_port);
    if (pthread_create(&p->th, NULL, proxy_main, p) != 0) {
        close(p->lfd);
        close(p->wake[0]);
        close(p->wake[1]);
        free(p);
        return NULL;
    }
    return p;
}

void e2e_proxy_stop(e2e_proxy *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_mutex_unlock(&p->mu);
    poke(p);
    pthread_join(p->th, NULL);
    for (int i = 0; i < PX_MAX_CONNS; i++)
        if (p->conns[i] != NULL)
            conn_close(p, i);
    close(p->lfd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
