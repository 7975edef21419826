/*
 * cluster/fsm.c - the entry envelope and the raft_fsm adapter (see fsm.h).
 */
#include "cluster/fsm.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/trace.h"
#include "util/byteorder.h"
#include "util/clock.h"
#include "util/log.h"

#define ENVELOPE_VERSION 1

int kr_entry_wrap(const void *data, size_t len, struct raft_buffer *out)
{
    if (len > KR_ENTRY_MAX_BYTES)
        return RAFT_TOOBIG;
    size_t total = (KR_ENTRY_HEADER_BYTES + len + 7) & ~(size_t)7;
    uint8_t *p = raft_malloc(total);
    if (p == NULL)
        return RAFT_NOMEM;
    p[0] = 'K';
    p[1] = 'R';
    p[2] = ENVELOPE_VERSION;
    p[3] = 0;
    kr_put_le32(p + 4, (uint32_t)len);
    if (len > 0)
        memcpy(p + KR_ENTRY_HEADER_BYTES, data, len);
    memset(p + KR_ENTRY_HEADER_BYTES + len, 0, total - KR_ENTRY_HEADER_BYTES - len);
    out->base = p;
    out->len = total;
    return 0;
}

int kr_entry_unwrap(const struct raft_buffer *buf, const void **data, size_t *len)
{
    const uint8_t *p = buf->base;
    if (buf->len < KR_ENTRY_HEADER_BYTES || p[0] != 'K' || p[1] != 'R' ||
        p[2] != ENVELOPE_VERSION || p[3] != 0)
        return -1;
    size_t n = kr_get_le32(p + 4);
    if (n > buf->len - KR_ENTRY_HEADER_BYTES)
        return -1;
    *data = p + KR_ENTRY_HEADER_BYTES;
    *len = n;
    return 0;
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    kr_fsm *f = fsm->data;
    const void *data;
    size_t len;
    *result = NULL;
    uint64_t index = raft_last_applied(f->raft) + 1;
    kr_trace_mark(KR_TRACE_COMMIT, index);
    f->bytes += buf->len;
    if (f->bytes >= f->max_bytes && f->threshold == 0 && f->raft != NULL &&
        f->raft->snapshot.threshold > 1) {
        /* libraft looks at its threshold after this apply: 1 takes a
         * snapshot now. */
        f->threshold = f->raft->snapshot.threshold;
        raft_set_snapshot_threshold(f->raft, 1);
    }
    if (kr_entry_unwrap(buf, &data, &len) < 0) {
        /* Written by a newer krappy or damaged: failing here (which stops
         * the node, fsm.h) keeps every node at the same place instead of
         * letting them diverge. */
        if (f->malformed++ == 0)
            kr_log(KR_LOG_ERROR,
                   "raft entry is not a krappy command (written by a newer krappy?); this node "
                   "stops applying");
        return RAFT_MALFORMED;
    }
    return f->hooks.apply(f->hooks.arg, index, data, len) == 0 ? 0 : RAFT_IOERR;
}

/* A snapshot was given (or restored): the log since is empty again. */
static void snapshot_given(kr_fsm *f)
{
    f->bytes = 0;
    if (f->threshold != 0 && f->raft != NULL)
        raft_set_snapshot_threshold(f->raft, f->threshold);
    f->threshold = 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    kr_fsm *f = fsm->data;
    void *data = NULL;
    size_t len = 0;
    /* RAFT_BUSY: libraft drops this snapshot quietly and asks again after
     * the next apply - not worth a call of the hook that soon. */
    uint64_t now = f->raft != NULL ? f->raft->io->time(f->raft->io) : 0;
    if (f->declined > 0 && now < f->declined_at + KR_FSM_SNAPSHOT_RETRY_MS)
        return RAFT_BUSY;
    uint64_t start = kr_trace_on() ? kr_mono_ns() : 0;
    if (f->hooks.snapshot(f->hooks.arg, &data, &len) != 0) {
        f->declined++;
        f->declined_at = now;
        kr_trace_note("snapshot declined", start);
        return RAFT_BUSY;
    }
    kr_trace_note("snapshot taken", start);
    struct raft_buffer *b = raft_malloc(sizeof *b);
    int rv = b != NULL ? kr_entry_wrap(data, len, b) : RAFT_NOMEM;
    free(data);
    if (rv != 0) {
        raft_free(b);
        return RAFT_BUSY;
    }
    *bufs = b;
    *n_bufs = 1;
    snapshot_given(f);
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    kr_fsm *f = fsm->data;
    const void *data;
    size_t len;
    if (kr_entry_unwrap(buf, &data, &len) < 0) {
        kr_log(KR_LOG_ERROR, "raft snapshot is not a krappy snapshot");
        return RAFT_MALFORMED;
    }
    if (f->hooks.restore(f->hooks.arg, data, len) != 0)
        return RAFT_IOERR;
    /* On success the buffer is the FSM's to free (libraft's contract). */
    raft_free(buf->base);
    snapshot_given(f);
    return 0;
}

void kr_fsm_init(kr_fsm *f, const kr_fsm_hooks *hooks)
{
    memset(f, 0, sizeof *f);
    f->hooks = *hooks;
    f->max_bytes = KR_FSM_SNAPSHOT_BYTES;
    f->fsm.version = 1;
    f->fsm.data = f;
    f->fsm.apply = fsm_apply;
    f->fsm.snapshot = fsm_snapshot;
    f->fsm.restore = fsm_restore;
}

void kr_fsm_bind(kr_fsm *f, struct raft *r)
{
    f->raft = r;
}
