/*
 * server/netconn.c - the socket side of a client connection, shared by both
 * ports (see netconn.h for the life of a connection and what a port adds).
 */
#include "server/netconn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "server/server.h"
#include "util/byteorder.h"
#include "util/clock.h"
#include "util/hostport.h"
#include "util/io.h"
#include "util/metrics.h"

static uint64_t ms_to_ns(uint64_t ms)
{
    return ms > UINT64_MAX / 1000000 ? UINT64_MAX : ms * 1000000;
}

size_t kr_netconn_out_len(const kr_netconn *n)
{
    return n->bev ? evbuffer_get_length(bufferevent_get_output(n->bev)) + n->out_held : 0;
}

int kr_netconn_write_out(kr_netconn *n)
{
    /* A socket bufferevent keeps its output's start frozen between its own
     * writes (evbuffer_write does nothing then): thaw it for this one, as
     * its write callback does. */
    struct evbuffer *out = bufferevent_get_output(n->bev);
    evbuffer_unfreeze(out, 1);
    int rc = evbuffer_write(out, bufferevent_getfd(n->bev));
    int err = errno;
    evbuffer_freeze(out, 1);
    errno = err;
    return rc;
}

uint64_t kr_netconn_pending_max(const kr_netconn *n)
{
    uint64_t one_frame = (uint64_t)n->srv->cfg->max_frame + KR_CONN_READ_CHUNK;
    return one_frame > KR_CONN_PENDING_MAX ? one_frame : KR_CONN_PENDING_MAX;
}

void kr_netconn_charge(kr_netconn *n, int64_t bytes)
{
    n->charged += (uint64_t)bytes; /* unsigned: a release (bytes < 0) subtracts */
    kr_budget_add(n->srv, bytes);
}

/* How far the input is read (it holds `have`): a chunk, or to the end of
 * the frame it begins when that is longer. */
static size_t read_target(struct evbuffer *in, size_t have)
{
    size_t need = KR_CONN_READ_CHUNK;
    if (have >= 4) {
        uint8_t hdr[4];
        evbuffer_copyout(in, hdr, 4);
        size_t frame = (size_t)kr_get_be32(hdr) + 4;
        if (frame > need)
            need = frame;
    }
    return need;
}

void kr_netconn_update_read(kr_netconn *n)
{
    if (n->bev == NULL)
        return;
    bool want;
    if (n->phase == KR_NETCONN_LINGERING) {
        want = true;
    } else if (n->phase != KR_NETCONN_OPEN || n->no_more || n->eof) {
        want = false;
    } else {
        struct evbuffer *in = bufferevent_get_input(n->bev);
        size_t have = evbuffer_get_length(in);
        want = kr_netconn_out_len(n) < KR_CONN_OUT_HIGH && have < read_target(in, have) &&
               n->budget.in_bytes + n->charged < kr_netconn_pending_max(n) &&
               kr_budget_may_read(&n->budget);
    }
    if (want && n->read_paused) {
        event_add(n->readable, NULL);
        n->read_paused = false;
    } else if (!want && !n->read_paused) {
        event_del(n->readable);
        n->read_paused = true;
    }
}

/* Shorten the n vectors of v to hold `bytes` in all. */
static void iov_trim(struct evbuffer_iovec *v, int n, size_t bytes)
{
    for (int i = 0; i < n; i++) {
        if (v[i].iov_len > bytes)
            v[i].iov_len = bytes;
        bytes -= v[i].iov_len;
    }
}

/*
 * The socket is read here, not by the bufferevent: libevent 2.1 asks the
 * socket how much it holds (ioctl FIONREAD) before every read, a system
 * call more per request - one in four of a request's at a time - and then
 * reads at most 4096 bytes per turn of the loop: a megabyte frame would
 * take 250 turns, a pipeline of small frames a turn per 4096 bytes. A read
 * here takes what the socket holds, up to what the input wants, straight
 * into the input.
 *
 * In pieces of at most KR_READ_REST_PIECE: libevent gives a reservation
 * one buffer of the next power of two above it, and one of 1 MiB or more
 * is mapped fresh by malloc and unmapped when drained (main.c's threshold)
 * - a page fault for every 4 KiB of every large frame, which cost the loop
 * as much as the rest of a Kafka Produce of 1 MB did.
 */
#define KR_READ_REST_PIECE (512u * 1024 - 256) /* with libevent's chain header: 512 KiB */

/* Read up to `want` bytes into in, in one piece. @return the bytes read;
 * 0 at the end of the stream; -1 with errno set (EAGAIN: none now). */
static ssize_t read_piece(int fd, struct evbuffer *in, size_t want)
{
    struct evbuffer_iovec v[2];
    int nv = evbuffer_reserve_space(in, (ssize_t)want, v, 2);
    if (nv <= 0) {
        errno = ENOMEM;
        return -1;
    }
    iov_trim(v, nv, want);
    struct iovec iov[2];
    for (int i = 0; i < nv; i++)
        iov[i] = (struct iovec){v[i].iov_base, v[i].iov_len};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)nv};
    ssize_t got = recvmsg(fd, &mh, MSG_DONTWAIT);
    if (got <= 0) {
        int err = errno;
        evbuffer_commit_space(in, v, 0);
        errno = err;
        return got;
    }
    iov_trim(v, nv, (size_t)got);
    evbuffer_commit_space(in, v, nv);
    return got;
}

/* Read up to `want` bytes into n's input. @return the bytes read; when
 * none, 0 at the end of the stream or -1 (errno; EAGAIN: none now). */
static ssize_t read_on(kr_netconn *n, size_t want)
{
    struct evbuffer *in = bufferevent_get_input(n->bev);
    /* The bufferevent keeps its input's end frozen (libevent's own reads
     * would unfreeze it around theirs). */
    evbuffer_unfreeze(in, 0);
    int fd = bufferevent_getfd(n->bev);
    ssize_t total = 0, got = -1;
    while ((size_t)total < want) {
        size_t piece =
            want - (size_t)total < KR_READ_REST_PIECE ? want - (size_t)total : KR_READ_REST_PIECE;
        got = read_piece(fd, in, piece);
        if (got <= 0)
            break;
        total += got;
        if ((size_t)got < piece)
            break;
    }
    int err = errno;
    evbuffer_freeze(in, 0);
    errno = err;
    return total > 0 ? total : got;
}

/* n may read now: open, reading on, and room in the budget. */
static bool may_read_now(kr_netconn *n)
{
    return n->bev != NULL && n->phase == KR_NETCONN_OPEN && !n->eof && !n->read_paused &&
           kr_budget_may_read(&n->budget);
}

/* Bytes to read for the input to hold `upto`, within n's share of request
 * memory (0: none). */
static size_t want_upto(const kr_netconn *n, size_t have, size_t upto)
{
    uint64_t held = n->budget.in_bytes + n->charged, max = kr_netconn_pending_max(n);
    if (have >= upto || held >= max)
        return 0;
    size_t want = upto - have;
    return want > max - held ? (size_t)(max - held) : want;
}

bool kr_netconn_read_rest(kr_netconn *n)
{
    if (!may_read_now(n))
        return false;
    struct evbuffer *in = bufferevent_get_input(n->bev);
    size_t have = evbuffer_get_length(in);
    if (have < 4)
        return false;
    uint8_t hdr[4];
    evbuffer_copyout(in, hdr, 4);
    size_t want = want_upto(n, have, (size_t)kr_get_be32(hdr) + 4);
    return want > 0 && read_on(n, want) > 0;
}

bool kr_netconn_read_now(kr_netconn *n)
{
    if (!may_read_now(n))
        return false;
    size_t have = evbuffer_get_length(bufferevent_get_input(n->bev));
    size_t want = want_upto(n, have, KR_CONN_READ_CHUNK);
    return want > 0 && read_on(n, want) > 0;
}

/* ---- socket callbacks ---- */

static void process_guarded(kr_netconn *n)
{
    n->refs++;
    n->ops->process(n);
    kr_netconn_release(n);
}

/* The client shut its side (or, closing, went). */
static void on_peer_eof(kr_netconn *n)
{
    if (n->phase != KR_NETCONN_OPEN) {
        kr_netconn_abort(n, NULL);
        return;
    }
    const char *why = n->ops->eof_closes(n);
    if (why != NULL) {
        kr_netconn_abort(n, why);
        return;
    }
    /* Half-closed: answer every whole request sent, then close (a torn
     * frame at the end is dropped). */
    n->eof = true;
    process_guarded(n);
}

static bool would_block(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    kr_netconn *n = arg;
    if (n->phase == KR_NETCONN_LINGERING) {
        /* What the client still sends is dropped until it closes too. */
        if (kr_drain_socket(fd) <= 0)
            kr_netconn_abort(n, NULL);
        return;
    }
    struct evbuffer *in = bufferevent_get_input(n->bev);
    size_t have = evbuffer_get_length(in);
    size_t want = want_upto(n, have, read_target(in, have));
    if (want == 0) {
        kr_netconn_update_read(n);
        return;
    }
    ssize_t got = read_on(n, want);
    if (got > 0)
        process_guarded(n);
    else if (got == 0)
        on_peer_eof(n);
    else if (!would_block(errno))
        kr_netconn_abort(n, strerror(errno));
}

static void on_write(struct bufferevent *bev, void *arg)
{
    kr_netconn *n = arg;
    if (n->phase == KR_NETCONN_FLUSHING) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
            return;
        if (!n->linger) {
            kr_netconn_abort(n, NULL);
            return;
        }
        /* Our last reply is out: shut our side, drain theirs. */
        shutdown(bufferevent_getfd(bev), SHUT_WR);
        n->phase = KR_NETCONN_LINGERING;
        n->phase_since_ns = kr_mono_ns();
        kr_netconn_update_read(n);
        return;
    }
    if (n->phase == KR_NETCONN_OPEN) {
        if (n->write_armed && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
            /* All written: the port writes on its own again (session.c). */
            n->write_armed = false;
            bufferevent_disable(bev, EV_WRITE);
            if (n->out_cb != NULL) /* the port's own writes need no drain clock */
                evbuffer_cb_clear_flags(bufferevent_get_output(bev), n->out_cb,
                                        EVBUFFER_CB_ENABLED);
        }
        process_guarded(n);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    kr_netconn *n = arg;
    (void)bev;
    if (what & BEV_EVENT_ERROR) {
        kr_netconn_abort(n, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return;
    }
    if (what & BEV_EVENT_EOF)
        on_peer_eof(n);
}

/* ---- request memory: the connection's side of its kr_breader ---- */

static uint64_t budget_charged(const kr_breader *b)
{
    const kr_netconn *n = b->owner;
    return n->charged;
}

static size_t budget_unfinished(const kr_breader *b)
{
    const kr_netconn *n = b->owner;
    if (n->bev == NULL)
        return 0;
    return kr_budget_frame_rest(bufferevent_get_input(n->bev), n->ops->min_frame,
                                n->srv->cfg->max_frame);
}

static void budget_update_read(kr_breader *b)
{
    kr_netconn_update_read(b->owner);
}

/* ---- life cycle ---- */

int kr_netconn_init(kr_netconn *n, kr_server *srv, const kr_netconn_ops *ops, uint64_t id, int fd,
                    const struct sockaddr *sa)
{
    n->srv = srv;
    n->ops = ops;
    n->id = id;
    n->refs = 1;
    n->phase = KR_NETCONN_OPEN;
    n->accepted_ns = n->last_request_ns = n->last_drain_ns = kr_mono_ns();
    n->budget = (kr_breader){.srv = srv,
                             .owner = n,
                             .charged = budget_charged,
                             .unfinished = budget_unfinished,
                             .update_read = budget_update_read,
                             .last_read_ns = n->accepted_ns};
    kr_sockaddr_format(sa, n->peer, sizeof n->peer, NULL);

    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    n->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (n->bev == NULL)
        return -1;
    n->readable = event_new(srv->base, fd, EV_READ | EV_PERSIST, on_readable, n);
    n->in_cb = evbuffer_add_cb(bufferevent_get_input(n->bev), kr_budget_on_input, &n->budget);
    if (n->readable == NULL || n->in_cb == NULL) {
        if (n->readable != NULL)
            event_free(n->readable);
        n->readable = NULL;
        bufferevent_setfd(n->bev, -1); /* the caller closes fd */
        bufferevent_free(n->bev);
        n->bev = NULL;
        return -1;
    }
    n->read_paused = true; /* until the port's first kr_netconn_update_read */
    bufferevent_setcb(n->bev, NULL, on_write, on_event, n);
    bufferevent_setwatermark(n->bev, EV_WRITE, KR_CONN_OUT_LOW, 0);
    n->out_cb =
        evbuffer_add_cb(bufferevent_get_output(n->bev), kr_server_note_drain, &n->last_drain_ns);
    srv->n_conns++;
    kr_gauge_set(srv->m.connections, srv->n_conns);
    return 0;
}

void kr_netconn_release(kr_netconn *n)
{
    if (--n->refs > 0)
        return;
    n->ops->free(n);
}

void kr_netconn_abort(kr_netconn *n, const char *why)
{
    if (n->bev == NULL)
        return;
    kr_server *srv = n->srv;
    /* Its input leaves the budget now; its running requests when they
     * finish. */
    evbuffer_remove_cb_entry(bufferevent_get_input(n->bev), n->in_cb);
    kr_budget_conn_gone(&n->budget);
    event_free(n->readable); /* before the bufferevent closes the socket */
    n->readable = NULL;
    bufferevent_free(n->bev);
    n->bev = NULL;
    srv->n_conns--;
    kr_gauge_set(srv->m.connections, srv->n_conns);
    if (srv->shutting_down && srv->n_conns == 0)
        event_base_loopexit(srv->base, NULL);
    /* Parked requests are withdrawn now; other running asynchronous ones
     * finish as orphans; the rest go with the last reference. */
    n->ops->closed(n, why);
    kr_netconn_release(n);
}

void kr_netconn_begin_flush(kr_netconn *n, bool linger)
{
    n->phase = KR_NETCONN_FLUSHING;
    n->linger = linger;
    n->phase_since_ns = kr_mono_ns();
    bufferevent_setwatermark(n->bev, EV_WRITE, 0, 0);
    kr_netconn_update_read(n);
    if (kr_netconn_out_len(n) == 0) {
        on_write(n->bev, n);
    } else {
        n->write_armed = true;
        bufferevent_enable(n->bev, EV_WRITE);
    }
}

/* ---- timeouts ---- */

bool kr_netconn_hello_late(const kr_netconn *n, uint64_t now_ns)
{
    return now_ns - n->accepted_ns > ms_to_ns(n->srv->cfg->hello_timeout_ms);
}

bool kr_netconn_write_stalled(const kr_netconn *n, uint64_t now_ns)
{
    return kr_netconn_out_len(n) > 0 &&
           now_ns - n->last_drain_ns > ms_to_ns(n->srv->cfg->write_timeout_ms);
}

bool kr_netconn_frame_stalled(const kr_netconn *n, uint64_t now_ns)
{
    return kr_budget_stalled(&n->budget, n->read_paused, now_ns);
}

bool kr_netconn_idle(const kr_netconn *n, uint64_t now_ns)
{
    const kr_config *cfg = n->srv->cfg;
    return cfg->idle_timeout_ms > 0 && n->running == 0 && kr_netconn_out_len(n) == 0 &&
           now_ns - n->last_request_ns > ms_to_ns(cfg->idle_timeout_ms);
}

bool kr_netconn_tick_closing(kr_netconn *n, uint64_t now_ns, const char *unread)
{
    switch (n->phase) {
    case KR_NETCONN_OPEN:
        return false;
    case KR_NETCONN_FLUSHING:
        if (now_ns - n->phase_since_ns > ms_to_ns(n->srv->cfg->write_timeout_ms))
            kr_netconn_abort(n, unread);
        return true;
    case KR_NETCONN_LINGERING:
        if (now_ns - n->phase_since_ns > ms_to_ns(KR_CONN_LINGER_MS))
            kr_netconn_abort(n, NULL);
        return true;
    }
    return true;
}
