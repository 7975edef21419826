/*
 * server/kafka_resp.h - the Kafka port's response buffers on their way to
 * the socket (kafka_listener.c).
 *
 * A large response (a Fetch's megabyte of records) is handed to the socket
 * by reference, not copied into the output, and its buffer comes back here
 * once sent, for the next one: fresh buffers of that size are mapped
 * memory (glibc's fixed mmap threshold, main.c), and their page faults
 * cost more than building the response did. The pool outlives the listener
 * for buffers still queued on closing sockets: it frees what comes back
 * once closed.
 *
 * Threads: the loop thread only (one pool per process).
 */
#ifndef KR_SERVER_KAFKA_RESP_H
#define KR_SERVER_KAFKA_RESP_H

#include <event2/buffer.h>

#include "util/buf.h"

/* Responses at least this large go out by reference. */
#define KR_KRESP_BY_REF (64u * 1024)
/* Buffers kept for reuse. */
#define KR_KRESP_POOL 8

/* The listener starts: buffers that come back are kept (up to
 * KR_KRESP_POOL). */
void kr_kresp_pool_open(void);

/* The listener is freed: the kept buffers are freed, and so is every
 * buffer that comes back from now on. */
void kr_kresp_pool_close(void);

/* Give an empty response buffer (b->data NULL) the largest pooled memory,
 * if any; b keeps its max. A buffer with memory is left as it is. */
void kr_kresp_pool_take(kr_buf *b);

/* Queue the response in resp on out: a small one copied (resp unchanged),
 * a large one by reference (its memory then belongs to the output and comes
 * back to the pool once sent; resp is left empty with its max).
 * @return 0, or -1 when the output refused it (resp unchanged). */
int kr_kresp_send(struct evbuffer *out, kr_buf *resp);

#endif
