/*
 * server/netconn.h - the socket side of a client connection, the same on
 * the Krappy port (session.c) and the Kafka port (kafka_listener.c):
 * accepting, reading into the request memory budget (budget.c), pausing
 * reading (back-pressure), EOF and half-close, writing the last replies,
 * lingering, the timeouts, closing, and the reference count.
 *
 * Each port embeds a kr_netconn as the first member of its connection and
 * gives it a kr_netconn_ops for its protocol: how to take frames off the
 * input, when an EOF closes at once (a request is parked), what to do when
 * the socket closes and when the memory goes. The request pipeline stays
 * the port's (server.h, kafka.h); kr_netconn keeps the counts that reading
 * and idleness depend on, and the port keeps them up to date.
 *
 * A connection's life: OPEN (reading and answering), then FLUSHING (its
 * last replies are being written), then - when it lingers - LINGERING (our
 * side shut down, the client's remaining input drained and dropped for a
 * moment, so the kernel does not answer it with a reset that would destroy
 * the last reply), then closed. Its memory goes with the last reference:
 * the open socket, each asynchronous request still running, and every
 * callback while it runs (a guard), so code below may close the socket at
 * any point without freeing memory its callers still use.
 */
#ifndef KR_SERVER_NETCONN_H
#define KR_SERVER_NETCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

typedef struct kr_server kr_server;
typedef struct kr_breader kr_breader;
typedef struct kr_netconn kr_netconn;
struct bufferevent;
struct evbuffer_cb_entry;

/*
 * A reader of request memory (budget.c): a connection of either port
 * (its kr_netconn), whose input buffer is counted with kr_budget_on_input.
 * The owner tells the budget what its running requests are charged, the
 * rest of the frame it has begun reading, and how to decide again whether
 * to read; the budget keeps the rest.
 */
struct kr_breader {
    kr_server *srv;
    void *owner;
    uint64_t (*charged)(const kr_breader *b);
    size_t (*unfinished)(const kr_breader *b); /* 0: no frame begun */
    void (*update_read)(kr_breader *b);
    uint64_t in_bytes;     /* in the input buffer (kr_budget_on_input) */
    uint64_t reserved;     /* the rest of its admitted frame, not yet read */
    bool admitted;         /* its unfinished frame has its room reserved */
    bool wait;             /* waits for room: on srv->budget_waiters */
    uint64_t since_ns;     /* ... since then */
    uint64_t last_read_ns; /* the last bytes arrived (owner), or its frame was admitted */
    TAILQ_ENTRY(kr_breader) link;
};

TAILQ_HEAD(kr_breader_list, kr_breader);

typedef enum kr_netconn_phase {
    KR_NETCONN_OPEN = 0,
    KR_NETCONN_FLUSHING, /* writing its last replies, then lingering or closed */
    KR_NETCONN_LINGERING /* our side shut down; their input dropped until EOF or timeout */
} kr_netconn_phase;

/* What a port tells its connections' socket side. */
typedef struct kr_netconn_ops {
    /* Take the whole frames off n's input and start them while the port's
     * pipeline rule allows, then decide again whether to read. Called with
     * a reference held; the socket may close underneath. */
    void (*process)(kr_netconn *n);
    /* The client shut its side: the reason to close at once (a parked
     * request cannot be answered before its wait ends, and the client has
     * gone), or NULL to answer the whole requests sent first. */
    const char *(*eof_closes)(const kr_netconn *n);
    /* The socket was just closed (why: NULL or the reason, for the log):
     * take the connection off the port's list, withdraw its parked
     * requests. The socket's reference is dropped after it returns. */
    void (*closed)(kr_netconn *n, const char *why);
    /* The last reference went: free the connection. */
    void (*free)(kr_netconn *n);
    /* The smallest frame size the port reads (kr_budget_frame_rest). */
    uint32_t min_frame;
} kr_netconn_ops;

struct kr_netconn {
    struct bufferevent *bev; /* first (server.h's kr_conn names it bev);
                                NULL once the socket is closed */
    const kr_netconn_ops *ops;
    kr_server *srv;
    uint64_t id;
    char peer[64];
    int refs; /* the socket, each running async request, and
                 each callback on the stack (a guard) */
    kr_netconn_phase phase;
    bool linger;                     /* FLUSHING ends in LINGERING, not a close */
    struct event *readable;          /* the socket's read event: netconn reads it itself */
    bool read_paused;                /* its read event is off (back-pressure, gating) */
    bool no_more;                    /* an error closes the connection: start nothing */
    bool eof;                        /* the client shut its side */
    bool in_process;                 /* ops->process is on the stack */
    bool write_armed;                /* the bufferevent's write event is on (the socket
                                        was full, or the connection is closing) */
    size_t out_held;                 /* reply bytes the port holds for its own write of this
                                        turn, not in the output yet (0 while write_armed) */
    uint32_t running;                /* requests started and not finished */
    uint32_t running_fifo;           /* ... of which under the fifo exception */
    uint64_t charged;                /* charged to its running requests */
    kr_breader budget;               /* its share of request memory */
    struct evbuffer_cb_entry *in_cb; /* kr_budget_on_input */
    uint64_t accepted_ns;
    uint64_t last_request_ns;
    uint64_t last_drain_ns;  /* the client last took reply bytes */
    uint64_t phase_since_ns; /* when FLUSHING or LINGERING began */
    /* kr_server_note_drain on the output: a port may turn it off while it
     * writes the output itself (session.c) */
    struct evbuffer_cb_entry *out_cb;
};

/* The connection of type `type` whose member `net` is n. */
#define KR_NETCONN_OWNER(n, type) ((type *)(void *)((char *)(n)-offsetof(type, net)))

/*
 * kr_netconn_init - n (zeroed, inside its connection) takes the accepted
 * socket fd in srv's loop: TCP_NODELAY, a bufferevent that closes fd when
 * freed, the callbacks, the write watermark and read chunk, the drain
 * clock (--write-timeout) and the budget's count of its input. n is then
 * OPEN with one reference (the socket's) and counted in srv->n_conns; its
 * bufferevent writes (its write event as libevent leaves a new one: on);
 * the socket is read by netconn's own read event, off until the port's
 * first kr_netconn_update_read (read_paused).
 * @return 0, or -1 when out of memory (n holds nothing then, and fd is
 * left open for the caller to close).
 */
int kr_netconn_init(kr_netconn *n, kr_server *srv, const kr_netconn_ops *ops, uint64_t id, int fd,
                    const struct sockaddr *sa);

/* Drop one reference; the last one calls ops->free. */
void kr_netconn_release(kr_netconn *n);

/* Close the socket at once, dropping unsent replies, then ops->closed.
 * Nothing when it is closed already. */
void kr_netconn_abort(kr_netconn *n, const char *why);

/* Start closing: write what the output holds, then linger (or close, when
 * linger is false). */
void kr_netconn_begin_flush(kr_netconn *n, bool linger);

/*
 * Decide whether the socket should be read: not while replies pile up
 * unread (back-pressure), not while the input already holds the next
 * whole frame that is waiting for earlier requests to finish, and not past
 * the connection's share of request memory or - the grant excepted - the
 * server's (budget.c). Always while lingering.
 */
void kr_netconn_update_read(kr_netconn *n);

/*
 * Read on into the input up to the end of the frame it begins (4-byte
 * big-endian size first), as much as the socket holds now, within what
 * kr_netconn_update_read allows (call it after reading is decided).
 * @return true when bytes were added; false when nothing was read (no
 *         begun frame, reading paused, nothing waiting, EOF or an error,
 *         which libevent's next read reports).
 */
bool kr_netconn_read_rest(kr_netconn *n);

/*
 * Read what the socket holds now into the input, up to KR_CONN_READ_CHUNK
 * bytes in all, within the connection's share of request memory (what a
 * closing port answers before it goes). @return true when bytes were added.
 */
bool kr_netconn_read_now(kr_netconn *n);

/* Reply bytes queued and not yet taken by the socket, out_held included
 * (0 once closed). */
size_t kr_netconn_out_len(const kr_netconn *n);

/* Write n's queued output (not out_held) to the socket now, as much as it
 * takes, rather than on libevent's next write callback (16 KiB a turn).
 * @return evbuffer_write's result: bytes written, or -1 with errno kept
 * (EAGAIN: the socket is full). */
int kr_netconn_write_out(kr_netconn *n);

/* The most n's requests may hold (its input and what they are charged):
 * KR_CONN_PENDING_MAX, or one max_frame frame and a read chunk. */
uint64_t kr_netconn_pending_max(const kr_netconn *n);

/* Charge (bytes > 0) or release (< 0) request memory of n's running
 * requests, to n and to the server's budget. */
void kr_netconn_charge(kr_netconn *n, int64_t bytes);

/* ---- timeouts, for the port's tick (both every KR_TICK_MS) ---- */

/* No authentication within --hello-timeout of the accept. */
bool kr_netconn_hello_late(const kr_netconn *n, uint64_t now_ns);

/* Replies queued and none taken for --write-timeout. */
bool kr_netconn_write_stalled(const kr_netconn *n, uint64_t now_ns);

/* Its admitted frame stopped arriving while others wait for memory. */
bool kr_netconn_frame_stalled(const kr_netconn *n, uint64_t now_ns);

/* Nothing running, nothing to write, no request for --idle-timeout. */
bool kr_netconn_idle(const kr_netconn *n, uint64_t now_ns);

/* The timeouts of a closing connection: FLUSHING past --write-timeout
 * closes with `unread` as the reason, LINGERING past KR_CONN_LINGER_MS
 * closes. @return true when n is closing (the port's own timeouts are for
 * OPEN connections), false when it is OPEN. */
bool kr_netconn_tick_closing(kr_netconn *n, uint64_t now_ns, const char *unread);

#endif
