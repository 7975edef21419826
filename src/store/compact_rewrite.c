/*
 * store/compact_rewrite.c - the rewrite of a group of segments on disk
 * (compact.h, "The keep rule" and "The rewrite"): the keep rule, the kept
 * events gathered in chunks whose keys are looked up together, and the
 * new segment renamed over the first old one. No state of the store's:
 * it runs on the compaction thread (compact.c) and in the tests.
 */
#include "store/compact.h"

#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/cbor.h"
#include "util/clock.h"
#include "util/grow.h"
#include "util/io.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/sched.h"

/* Bytes of kept events gathered before a write to the new segment. */
#define OUT_CHUNK (1u << 20)
/* Elements of a chunk's arrays (batches, events, keys) at first. */
#define CHUNK_FIRST 1024
/* Bytes read or written by one syscall. On a kernel without preemption a
 * thread is not taken off its core inside a syscall, idle priority or
 * not: a normal thread woken for that core waits until the copy of the
 * whole read or write is done. A short step keeps that wait short. */
#define IO_STEP (16u << 10)
/* Keys asked of the view between two steps aside (kr_sched_step_aside). */
#define LOOKUP_STEP 64
/* The most of a rate not used that a rewrite may take up at once. */
#define RATE_CREDIT_MS 50
/* Bytes of a source segment asked of the disk ahead at a time. */
#define READ_AHEAD (256u << 10)

bool kr_compact_is_temp(const char *name)
{
    size_t n = strlen(name), sl = strlen(KR_COMPACT_TEMP_SUFFIX);
    return n > sl && strcmp(name + n - sl, KR_COMPACT_TEMP_SUFFIX) == 0;
}

bool kr_compact_keep(const kr_keep_in *e, uint64_t now_ms, uint64_t delete_retention_ms)
{
    if (!e->has_key)
        return true;
    if (e->found)
        return e->latest <= e->offset; /* its own (or a view behind it: keep) */
    if (!e->tombstone)
        return false; /* a later tombstone deleted the key */
    /* Saturating: delete_retention_ms may be huge. */
    return e->ts > now_ms || now_ms - e->ts < delete_retention_ms;
}

/* ---- the rewrite ---- */

/* The new segment being written: kept bytes gathered, then written. */
typedef struct out_file {
    int fd;
    uint64_t pos; /* bytes of the file so far (written or gathered) */
    uint64_t written;
    kr_buf *buf; /* the rewrite's memory's */
} out_file;

/* pwrite n bytes at o->written, IO_STEP at most a call.
 * @return 0, or -1 (errno). */
static int write_steps(out_file *o, const void *p, size_t n)
{
    for (size_t done = 0; done < n; done += IO_STEP) {
        size_t step = n - done < IO_STEP ? n - done : IO_STEP;
        if (kr_pwrite_all(o->fd, (const uint8_t *)p + done, step, o->written + done) < 0)
            return -1;
    }
    return 0;
}

static int out_flush(out_file *o)
{
    if (o->buf->len == 0)
        return 0;
    if (write_steps(o, o->buf->data, o->buf->len) < 0)
        return -1;
    o->written += o->buf->len;
    kr_buf_reset(o->buf);
    return 0;
}

static int out_put(out_file *o, const void *p, size_t n)
{
    if (o->buf->len + n > OUT_CHUNK && out_flush(o) < 0)
        return -1;
    if (n > OUT_CHUNK) { /* a batch larger than the chunk: as it is */
        if (write_steps(o, p, n) < 0)
            return -1;
        o->written += n;
    } else if (kr_buf_append(o->buf, p, n) < 0) {
        errno = ENOMEM;
        return -1;
    }
    o->pos += n;
    return 0;
}

/* Sleep ns, in slices that notice a stop. @return 0, or -1 when stopped. */
static int rest(const kr_rewrite *rw, uint64_t ns)
{
    uint64_t until = kr_mono_ns() + ns;
    for (;;) {
        if (rw->stop != NULL && atomic_load(rw->stop))
            return -1;
        uint64_t now = kr_mono_ns();
        if (now >= until)
            return 0;
        uint64_t d = until - now < 100000000ull ? until - now : 100000000ull;
        struct timespec ts = {(time_t)(d / 1000000000ull), (long)(d % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
}

/* Yield to a busy server (compact.h, KR_COMPACT_BUSY_BPS): rest once the
 * current work slice is over while it is busy. @return 0, or -1 when
 * stopped. */
static int yield_to_ingest(kr_rewrite *rw)
{
    if (rw->stop != NULL && atomic_load(rw->stop))
        return -1;
    if (rw->busy_bytes == NULL)
        return 0;
    uint64_t now = kr_mono_ns();
    if (now - rw->pace.sampled_ns >= 10000000ull) { /* a rate over 10 ms at least */
        uint64_t b = kr_counter_value(rw->busy_bytes);
        rw->pace.busy = rw->pace.sampled_ns != 0 &&
                        (double)(b - rw->pace.sampled) * 1e9 / (double)(now - rw->pace.sampled_ns) >
                            (double)KR_COMPACT_BUSY_BPS;
        if (!rw->pace.busy || rw->pace.sampled_ns == 0)
            rw->pace.slice_ns = now;
        rw->pace.sampled_ns = now;
        rw->pace.sampled = b;
    }
    if (!rw->pace.busy || now - rw->pace.slice_ns < KR_COMPACT_BUSY_WORK_MS * 1000000ull)
        return 0;
    rw->rests++;
    if (rest(rw, KR_COMPACT_BUSY_REST_MS * 1000000ull) < 0)
        return -1;
    rw->pace.slice_ns = kr_mono_ns();
    return 0;
}

/* Pace the rewrite: bytes (read and written so far) at rw->rate at most,
 * with up to RATE_CREDIT_MS of a rate not used taken up at once (not more:
 * a rewrite that rested does not race afterwards), and yield to a busy
 * server. @return 0, or -1 when stopped. */
static int throttle(kr_rewrite *rw, uint64_t bytes)
{
    if (yield_to_ingest(rw) < 0)
        return -1;
    if (rw->rate == 0)
        return 0;
    uint64_t now = kr_mono_ns(), d = bytes - rw->pace.moved;
    rw->pace.moved = bytes;
    if (rw->pace.due_ns + RATE_CREDIT_MS * 1000000ull < now)
        rw->pace.due_ns = now - RATE_CREDIT_MS * 1000000ull;
    rw->pace.due_ns += d / rw->rate * 1000000000ull + d % rw->rate * 1000000000ull / rw->rate;
    return rw->pace.due_ns > now ? rest(rw, rw->pace.due_ns - now) : 0;
}

/*
 * Batches read and not yet written: their bytes as read (header, then
 * payload), their events, and the distinct keys of those, so that each key
 * of a few MiB of batches is looked up once, however often it occurs.
 */
typedef struct cbatch {
    size_t at; /* its header's position in chunk.bytes */
    kr_batch_hdr h;
    size_t ev0; /* its first event in chunk.ev */
} cbatch;

#define NO_KEY UINT32_MAX

typedef struct cevent {
    uint64_t offset, ts;
    uint32_t at;  /* its position in the batch's payload */
    uint32_t key; /* its key in chunk.ask, or NO_KEY */
    bool tombstone, keep;
} cevent;

/* A distinct key: its content in chunk.keys, and its hash. */
typedef struct ckey {
    size_t at, len;
    uint64_t hash;
    int found;       /* the view's answer: holds it, */
    uint64_t latest; /* at this offset */
} ckey;

typedef struct chunk {
    kr_buf bytes, keys;
    cbatch *b;
    cevent *ev;
    ckey *k;             /* the distinct keys, in the order they came */
    kr_compact_key *ask; /* the same, asked of the view in rec's order */
    struct sortrec *rec; /* their order (sort_keys) */
    uint32_t *slot;      /* hash table of the keys: index in k + 1, 0 empty */
    size_t nb, cap_b, nev, cap_ev, nk, cap_k, cap_ask, nslot;
} chunk;

static void chunk_reset(chunk *c)
{
    kr_buf_reset(&c->bytes);
    kr_buf_reset(&c->keys);
    c->nb = c->nev = c->nk = 0;
    if (c->slot != NULL)
        memset(c->slot, 0, c->nslot * sizeof *c->slot);
}

static void chunk_free(chunk *c)
{
    kr_buf_free(&c->bytes);
    kr_buf_free(&c->keys);
    free(c->b);
    free(c->ev);
    free(c->k);
    free(c->ask);
    free(c->rec);
    free(c->slot);
}

struct kr_rewrite_mem {
    chunk c;
    kr_buf out;
};

kr_rewrite_mem *kr_rewrite_mem_new(void)
{
    kr_rewrite_mem *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    kr_buf_init(&m->c.bytes, SIZE_MAX); /* a chunk and one more batch at most */
    kr_buf_init(&m->c.keys, SIZE_MAX);
    kr_buf_init(&m->out, OUT_CHUNK);
    return m;
}

void kr_rewrite_mem_free(kr_rewrite_mem *m)
{
    if (m == NULL)
        return;
    chunk_free(&m->c);
    kr_buf_free(&m->out);
    free(m);
}

/* FNV-1a. */
static uint64_t key_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* Make the hash table twice as large (and at least 4096 slots), the keys
 * in it again. @return 0, or -1 (out of memory; the table as it was). */
static int rehash(chunk *c)
{
    size_t n = c->nslot ? c->nslot * 2 : 4096;
    uint32_t *t = calloc(n, sizeof *t);
    if (t == NULL)
        return -1;
    for (size_t i = 0; i < c->nk; i++) {
        size_t x = c->k[i].hash & (n - 1);
        while (t[x] != 0)
            x = (x + 1) & (n - 1);
        t[x] = (uint32_t)i + 1;
    }
    free(c->slot);
    c->slot = t;
    c->nslot = n;
    return 0;
}

/* The index of key p[0..n) among the chunk's distinct keys, added when
 * new. @return it, or NO_KEY when out of memory. */
static uint32_t key_index(chunk *c, const uint8_t *p, size_t n)
{
    if (2 * (c->nk + 1) > c->nslot && rehash(c) < 0)
        return NO_KEY;
    uint64_t h = key_hash(p, n);
    size_t x = h & (c->nslot - 1);
    for (; c->slot[x] != 0; x = (x + 1) & (c->nslot - 1)) {
        const ckey *k = &c->k[c->slot[x] - 1];
        if (k->hash == h && k->len == n && memcmp(c->keys.data + k->at, p, n) == 0)
            return c->slot[x] - 1;
    }
    ckey *ks = kr_grow(c->k, c->nk, &c->cap_k, sizeof *c->k, CHUNK_FIRST);
    if (ks == NULL)
        return NO_KEY;
    c->k = ks;
    /* One byte more: a key of 0 bytes still has memory behind it. */
    if (kr_buf_reserve(&c->keys, n + 1) < 0)
        return NO_KEY;
    if (n > 0)
        memcpy(c->keys.data + c->keys.len, p, n);
    c->k[c->nk] = (ckey){.at = c->keys.len, .len = n, .hash = h};
    c->keys.len += n;
    c->slot[x] = (uint32_t)++c->nk;
    return (uint32_t)(c->nk - 1);
}

/*
 * Add the batch at c->bytes.data + at (header h, payload after it, both
 * checked) to the chunk: its events, and its events' keys.
 * @return 0, or -1 (rw->err filled).
 */
static int chunk_add(kr_rewrite *rw, chunk *c, size_t at, const kr_batch_hdr *h)
{
    cbatch *b = kr_grow(c->b, c->nb, &c->cap_b, sizeof *c->b, CHUNK_FIRST);
    if (b == NULL)
        goto nomem;
    c->b = b;
    c->b[c->nb++] = (cbatch){.at = at, .h = *h, .ev0 = c->nev};
    const uint8_t *pl = c->bytes.data + at + h->hlen;
    size_t p = 0;
    for (uint32_t i = 0; i < h->count; i++) {
        kr_event_view v;
        size_t raw_len;
        if (kr_event_view_parse_len(pl + p, h->len - p, &v, &raw_len) < 0 ||
            v.offset != h->base + i) {
            snprintf(rw->err, sizeof rw->err, "the events of the batch at offset %llu do not parse",
                     (unsigned long long)h->base);
            return -1;
        }
        cevent *evs = kr_grow(c->ev, c->nev, &c->cap_ev, sizeof *c->ev, CHUNK_FIRST);
        if (evs == NULL)
            goto nomem;
        c->ev = evs;
        cevent *e = &c->ev[c->nev++];
        *e = (cevent){.offset = v.offset,
                      .ts = v.ts,
                      .at = (uint32_t)p,
                      .key = NO_KEY,
                      .tombstone = v.value.kind == KR_CBOR_NULL};
        if (v.key.kind != KR_CBOR_NULL) {
            /* Its content: as it is, or joined when in chunks. */
            uint8_t tmp[KRAPPY_MAX_KEY_BYTES];
            const uint8_t *kp = v.key.str != NULL ? v.key.str : (const uint8_t *)"";
            size_t kl = v.key.str_len;
            if (v.key.indefinite) {
                kl = kr_cbor_str_copy(&v.key, tmp, sizeof tmp);
                kl = kl < sizeof tmp ? kl : sizeof tmp;
                kp = tmp;
            }
            if ((e->key = key_index(c, kp, kl)) == NO_KEY)
                goto nomem;
        }
        p += raw_len;
    }
    return 0;
nomem:
    snprintf(rw->err, sizeof rw->err, "out of memory");
    return -1;
}

/*
 * The chunk's keys in the view's order (bytewise, the shorter first on a
 * tie), sorted in place - a heap sort of their first 8 bytes, their rest
 * compared only on a tie - because the C library's sort takes a buffer
 * as large as the array from malloc for each call (mapped and unmapped,
 * for the hundred thousand keys of a chunk: the churn kr_rewrite_mem
 * avoids).
 */
typedef struct sortrec {
    uint64_t pre; /* the first 8 bytes, big-endian, zero-padded */
    uint32_t id;  /* the key's index in chunk.k */
} sortrec;

static uint64_t key_prefix(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++)
        v = v << 8 | (i < n ? p[i] : 0);
    return v;
}

static bool key_less(const chunk *c, const sortrec *a, const sortrec *b)
{
    if (a->pre != b->pre)
        return a->pre < b->pre;
    const ckey *x = &c->k[a->id], *y = &c->k[b->id];
    size_t n = x->len < y->len ? x->len : y->len;
    int d = n > 8 ? memcmp(c->keys.data + x->at + 8, c->keys.data + y->at + 8, n - 8) : 0;
    return d != 0 ? d < 0 : x->len < y->len;
}

static void sift_down(const chunk *c, sortrec *r, size_t at, size_t n)
{
    for (;;) {
        size_t big = at, l = 2 * at + 1;
        if (l < n && key_less(c, &r[big], &r[l]))
            big = l;
        if (l + 1 < n && key_less(c, &r[big], &r[l + 1]))
            big = l + 1;
        if (big == at)
            return;
        sortrec t = r[at];
        r[at] = r[big];
        r[big] = t;
        at = big;
    }
}

static void sort_keys(const chunk *c, sortrec *r, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(c, r, i, n);
    for (size_t end = n; end-- > 1;) {
        sortrec t = r[0];
        r[0] = r[end];
        r[end] = t;
        sift_down(c, r, 0, end);
    }
}

/* Ask the view about the chunk's keys (each one once) and decide every
 * event by the keep rule. @return 0, or -1 (rw->err filled). */
static int chunk_decide(kr_rewrite *rw, chunk *c)
{
    if (c->nk > 0) {
        if (c->cap_ask < c->nk) {
            kr_compact_key *a = realloc(c->ask, c->nk * sizeof *c->ask);
            sortrec *r = a == NULL ? NULL : realloc(c->rec, c->nk * sizeof *c->rec);
            if (a != NULL)
                c->ask = a;
            if (r == NULL) {
                snprintf(rw->err, sizeof rw->err, "out of memory");
                return -1;
            }
            c->rec = r;
            c->cap_ask = c->nk;
        }
        /* Asked in ascending order: a batch of neighbours shares the
         * view's data blocks. */
        for (size_t i = 0; i < c->nk; i++)
            c->rec[i] = (sortrec){.pre = key_prefix(c->keys.data + c->k[i].at, c->k[i].len),
                                  .id = (uint32_t)i};
        sort_keys(c, c->rec, c->nk);
        for (size_t i = 0; i < c->nk; i++) {
            const ckey *k = &c->k[c->rec[i].id];
            c->ask[i] = (kr_compact_key){.key = c->keys.data + k->at, .klen = k->len};
        }
        /* A chunk's lookups are most of a rewrite's CPU time: asked a few
         * at a time, with a step aside between (sched.h says why). */
        for (size_t i = 0; i < c->nk; i += LOOKUP_STEP) {
            size_t n = c->nk - i < LOOKUP_STEP ? c->nk - i : LOOKUP_STEP;
            if (rw->lookup(rw->lookup_arg, c->ask + i, n, rw->err, sizeof rw->err) < 0)
                return -1;
            kr_sched_step_aside();
            if (yield_to_ingest(rw) < 0) {
                snprintf(rw->err, sizeof rw->err, "stopped");
                return -1;
            }
        }
        for (size_t i = 0; i < c->nk; i++) { /* ask[i] is rec[i]'s key */
            ckey *k = &c->k[c->rec[i].id];
            k->found = c->ask[i].found;
            k->latest = c->ask[i].latest;
        }
    }
    for (size_t i = 0; i < c->nev; i++) {
        cevent *e = &c->ev[i];
        kr_keep_in k = {.has_key = e->key != NO_KEY,
                        .tombstone = e->tombstone,
                        .offset = e->offset,
                        .ts = e->ts};
        if (k.has_key) {
            k.found = c->k[e->key].found;
            k.latest = c->k[e->key].latest;
        }
        e->keep = kr_compact_keep(&k, rw->now_ms, rw->delete_retention_ms);
    }
    return 0;
}

/* Emit the kept events [from, to) of a batch (their bytes consecutive in
 * the payload at p, len bytes) as one batch of the new segment. */
static int emit_run(kr_rewrite *rw, out_file *o, uint64_t base, uint32_t count, uint64_t max_ts,
                    const uint8_t *p, uint32_t len)
{
    kr_batch_hdr h = {.base = base, .count = count, .len = len, .max_ts = max_ts};
    uint8_t hb[KR_BATCH_HEADER_MAX];
    uint32_t hlen = kr_batch_header_encode(hb, &h, p);
    kr_index_add(&rw->idx, base, o->pos);
    if (max_ts > rw->max_ts)
        rw->max_ts = max_ts;
    return out_put(o, hb, hlen) < 0 || out_put(o, p, len) < 0 ? -1 : 0;
}

/* Write what the rule kept of one batch: the whole batch as it is when
 * nothing goes, else its runs of kept events. @return 0, or -1. */
static int emit_batch(kr_rewrite *rw, out_file *o, const chunk *c, const cbatch *b)
{
    const uint8_t *hb = c->bytes.data + b->at, *pl = hb + b->h.hlen;
    const cevent *ev = c->ev + b->ev0;
    uint32_t count = b->h.count, kept = 0;
    for (uint32_t i = 0; i < count; i++)
        kept += ev[i].keep;
    rw->events_in += count;
    rw->events_kept += kept;
    if (kept == count) {
        kr_index_add(&rw->idx, b->h.base, o->pos);
        if (b->h.max_ts > rw->max_ts)
            rw->max_ts = b->h.max_ts;
        return out_put(o, hb, b->h.hlen) < 0 || out_put(o, pl, b->h.len) < 0 ? -1 : 0;
    }
    for (uint32_t i = 0; i < count;) {
        if (!ev[i].keep) {
            i++;
            continue;
        }
        uint32_t j = i;
        uint64_t mts = 0;
        for (; j < count && ev[j].keep; j++)
            mts = ev[j].ts > mts ? ev[j].ts : mts;
        uint32_t end = j < count ? ev[j].at : b->h.len;
        if (emit_run(rw, o, b->h.base + i, j - i, mts, pl + ev[i].at, end - ev[i].at) < 0)
            return -1;
        i = j;
    }
    return 0;
}

/* Decide and write the chunk's batches, then empty it.
 * @return 0, or -1 (rw->err filled). */
static int chunk_flush(kr_rewrite *rw, out_file *o, chunk *c)
{
    if (c->nb == 0)
        return 0;
    if (chunk_decide(rw, c) < 0)
        return -1;
    for (size_t i = 0; i < c->nb; i++)
        if (emit_batch(rw, o, c, &c->b[i]) < 0) {
            snprintf(rw->err, sizeof rw->err, "writing the compacted segment failed: %s",
                     strerror(errno));
            return -1;
        }
    chunk_reset(c);
    return 0;
}

/* pread exactly n bytes, IO_STEP at most a call.
 * @return 0, or -1 (errno; EIO when short). */
static int read_at(int fd, void *p, size_t n, uint64_t pos)
{
    for (size_t done = 0; done < n;) {
        size_t step = n - done < IO_STEP ? n - done : IO_STEP;
        ssize_t r = pread(fd, (uint8_t *)p + done, step, (off_t)(pos + done));
        if (r <= 0) {
            if (r == 0)
                errno = EIO;
            else if (errno == EINTR)
                continue;
            return -1;
        }
        done += (size_t)r;
    }
    return 0;
}

/* The source's next READ_AHEAD bytes from pos asked of the disk ahead of
 * the reads, when pos entered a window not asked for yet (*asked: the
 * end of what was). The file's own readahead is off (rewrite_source): the
 * kernel allocates and submits its window inside the read that meets it,
 * and that window is the device's (read_ahead_kb, MiBs on some disks);
 * this one is READ_AHEAD bytes at a time, and only a hint. */
static void read_ahead(int fd, uint64_t pos, uint64_t size, uint64_t *asked)
{
    if (pos + READ_AHEAD / 2 < *asked || *asked >= size)
        return;
    uint64_t from = *asked > pos ? *asked : pos;
    uint64_t len = size - from < READ_AHEAD ? size - from : READ_AHEAD;
    (void)posix_fadvise(fd, (off_t)from, (off_t)len, POSIX_FADV_WILLNEED);
    *asked = from + len;
}

/* Read the batches of one source segment into the chunk, flushing it into
 * o whenever it holds rw->chunk_bytes. @return 0, or -1 (rw->err filled). */
static int rewrite_source(kr_rewrite *rw, out_file *o, chunk *c, uint64_t base, uint64_t *moved)
{
    char name[KR_SEG_NAME_BYTES];
    kr_seg_name(name, base);
    int fd = openat(rw->dirfd, name, O_RDONLY | O_CLOEXEC);
    int rc = -1;
    struct stat st;
    uint8_t hdr[KR_BATCH_HEADER_MAX];
    kr_seg_header sh;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(rw->err, sizeof rw->err, "cannot read segment %s: %s", name, strerror(errno));
        goto out;
    }
    /* Version 1 (0.1.0's, or compaction's own output) or 2: a header
     * fits in the batch header buffer either way. */
    size_t hl = st.st_size < KR_SEG_HEADER_V2_BYTES ? (size_t)st.st_size : KR_SEG_HEADER_V2_BYTES;
    if (read_at(fd, hdr, hl, 0) < 0) {
        snprintf(rw->err, sizeof rw->err, "cannot read segment %s: %s", name, strerror(errno));
        goto out;
    }
    if (kr_seg_header_decode(hdr, hl, &sh) < 0 || sh.base != base) {
        snprintf(rw->err, sizeof rw->err, "segment %s has a bad header", name);
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size, asked = 0;
    rw->bytes_in += size;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM); /* read_ahead instead */
    for (uint64_t pos = sh.len; pos < size;) {
        kr_batch_hdr h;
        read_ahead(fd, pos, size, &asked);
        size_t avail = size - pos < sizeof hdr ? (size_t)(size - pos) : sizeof hdr;
        if (read_at(fd, hdr, avail, pos) < 0 || kr_batch_header_decode(hdr, avail, &h) < 0 ||
            size - pos - h.hlen < h.len) {
            snprintf(rw->err, sizeof rw->err,
                     "segment %s holds no whole batch at byte %llu; it is left as it is", name,
                     (unsigned long long)pos);
            goto out;
        }
        size_t at = c->bytes.len;
        if (kr_buf_reserve(&c->bytes, (size_t)h.hlen + h.len) < 0) {
            snprintf(rw->err, sizeof rw->err, "out of memory");
            goto out;
        }
        uint8_t *dst = c->bytes.data + at;
        memcpy(dst, hdr, h.hlen);
        if (read_at(fd, dst + h.hlen, h.len, pos + h.hlen) < 0) {
            snprintf(rw->err, sizeof rw->err, "cannot read segment %s: %s", name, strerror(errno));
            goto out;
        }
        if (!kr_batch_verify(dst, dst + h.hlen, h.len)) {
            snprintf(rw->err, sizeof rw->err,
                     "segment %s has a damaged batch at byte %llu; it is left as it is", name,
                     (unsigned long long)pos);
            goto out;
        }
        c->bytes.len += (size_t)h.hlen + h.len;
        if (chunk_add(rw, c, at, &h) < 0)
            goto out;
        if (c->bytes.len >= (rw->chunk_bytes ? rw->chunk_bytes : KR_COMPACT_CHUNK_BYTES) &&
            chunk_flush(rw, o, c) < 0)
            goto out;
        pos += h.hlen + h.len;
        *moved += h.hlen + h.len;
        kr_sched_step_aside();
        if (throttle(rw, *moved + o->pos) < 0) {
            snprintf(rw->err, sizeof rw->err, "stopped");
            goto out;
        }
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* The new file in place of the old ones (the atomic point is the rename),
 * then the merged ones gone and the hints written. @return 0, or -1. */
static int swap_in(kr_rewrite *rw, const char *tmp)
{
    char name[KR_SEG_NAME_BYTES];
    kr_index_file_name(name, rw->bases[0]);
    /* An old hint must not describe the new file, even for a moment. */
    if (unlinkat(rw->dirfd, name, 0) < 0 && errno != ENOENT)
        return -1;
    kr_seg_name(name, rw->bases[0]);
    if (renameat(rw->dirfd, tmp, rw->dirfd, name) < 0)
        return -1;
    /* The new file is in place from here on, whatever follows. */
    if (fsync(rw->dirfd) < 0 && errno != EINVAL)
        kr_log(KR_LOG_WARN,
               "cannot sync a topic directory after a compaction; a power cut "
               "may bring the old segment back, which is as good",
               KR_LOG_STR("reason", strerror(errno)));
    for (size_t i = 1; i < rw->n; i++) {
        kr_seg_name(name, rw->bases[i]);
        if (unlinkat(rw->dirfd, name, 0) < 0 && errno != ENOENT)
            kr_log(KR_LOG_WARN, "cannot remove a merged segment; the next start removes it",
                   KR_LOG_STR("file", name), KR_LOG_STR("reason", strerror(errno)));
        kr_index_file_name(name, rw->bases[i]);
        (void)unlinkat(rw->dirfd, name, 0);
    }
    if (rw->n > 1 && fsync(rw->dirfd) < 0 && errno != EINVAL)
        kr_log(KR_LOG_WARN,
               "cannot sync a topic directory after a merge; the next start "
               "removes what a power cut brings back",
               KR_LOG_STR("reason", strerror(errno)));
    kr_index_meta im = {.next = rw->end, .max_ts = rw->max_ts};
    (void)kr_index_write(rw->dirfd, rw->bases[0], &im, rw->size, &rw->idx); /* a hint */
    return 0;
}

int kr_compact_rewrite(kr_rewrite *rw)
{
    /* BASE.compact: not a .seg name, so that nothing takes it for one. */
    char tmp[KR_SEG_NAME_BYTES + sizeof KR_COMPACT_TEMP_SUFFIX];
    kr_seg_name(tmp, rw->bases[0]);
    strcpy(tmp + KR_SEG_NAME_BYTES - 5, KR_COMPACT_TEMP_SUFFIX);
    rw->bytes_in = rw->size = rw->max_ts = rw->events_in = rw->events_kept = rw->rests = 0;
    rw->err[0] = '\0';
    kr_rewrite_mem *own = rw->mem == NULL ? kr_rewrite_mem_new() : NULL;
    kr_rewrite_mem *m = rw->mem != NULL ? rw->mem : own;
    if (m == NULL) {
        snprintf(rw->err, sizeof rw->err, "out of memory");
        return -1;
    }
    chunk_reset(&m->c);
    kr_buf_reset(&m->out);
    out_file o = {.fd = -1, .buf = &m->out};
    chunk *c = &m->c;
    uint64_t moved = 0;
    memset(&rw->pace, 0, sizeof rw->pace);
    int rc = -1;
    uint8_t hdr[KR_SEG_HEADER_BYTES];
    (void)unlinkat(rw->dirfd, tmp, 0);
    o.fd = openat(rw->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    /* Version 1 with the flag: segment.h says why no sync record. */
    kr_seg_header_encode_v1(hdr, rw->bases[0], KR_SEG_F_COMPACTED);
    if (o.fd < 0 || out_put(&o, hdr, sizeof hdr) < 0) {
        snprintf(rw->err, sizeof rw->err, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < rw->n; i++)
        if (rewrite_source(rw, &o, c, rw->bases[i], &moved) < 0)
            goto out;
    if (chunk_flush(rw, &o, c) < 0)
        goto out;
    rw->size = o.pos;
    if (rw->n == 1 && rw->events_kept == rw->events_in) {
        rc = 1; /* nothing would go: leave it */
        goto out;
    }
    if (out_flush(&o) < 0 || fdatasync(o.fd) < 0) {
        snprintf(rw->err, sizeof rw->err, "writing %s failed: %s", tmp, strerror(errno));
        goto out;
    }
    close(o.fd);
    o.fd = -1;
    if (swap_in(rw, tmp) < 0) {
        snprintf(rw->err, sizeof rw->err, "cannot put %s in place: %s", tmp, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (o.fd >= 0)
        close(o.fd);
    if (rc != 0)
        (void)unlinkat(rw->dirfd, tmp, 0);
    kr_rewrite_mem_free(own);
    return rc;
}
