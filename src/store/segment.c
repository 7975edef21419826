/*
 * store/segment.c - the on-disk format of a topic's stream (see segment.h):
 * names, segment and batch headers, payload checks, and the scan that
 * verifies a segment at start-up and finds where a torn tail begins.
 *
 * Nothing here allocates per event. The scan reads the file through one
 * window of up to SCAN_WINDOW bytes; a batch larger than that is read into a
 * second buffer sized to the largest such batch.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/cbor.h"
#include "store/segment.h"
#include "util/byteorder.h"
#include "util/crc32c.h"

/* Bytes read per pread while scanning; batches up to this size are checked
 * in place without a copy. */
#define SCAN_WINDOW ((size_t)1 << 20)

/* ---- names ---- */

void kr_seg_name(char out[KR_SEG_NAME_BYTES], uint64_t base)
{
    for (int i = 19; i >= 0; i--) {
        out[i] = (char)('0' + base % 10);
        base /= 10;
    }
    memcpy(out + 20, ".seg", 5);
}

int kr_seg_parse_name(const char *name, uint64_t *base)
{
    uint64_t v = 0;
    if (name == NULL || strlen(name) != KR_SEG_NAME_BYTES - 1 || strcmp(name + 20, ".seg") != 0)
        return -1;
    for (int i = 0; i < 20; i++) {
        unsigned d = (unsigned)(unsigned char)name[i] - '0';
        if (d > 9)
            return -1;
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *base = v;
    return 0;
}

/* ---- segment header ---- */

/* The fixed part: magic, version, length, base, CRC, flags. */
static void header_fixed(uint8_t out[KR_SEG_HEADER_BYTES], uint32_t version, uint32_t len,
                         uint64_t base, uint32_t flags)
{
    memcpy(out, KR_SEG_MAGIC, 8);
    kr_put_be32(out + 8, version);
    kr_put_be32(out + 12, len);
    kr_put_be64(out + 16, base);
    /* The CRC covers bytes 0..23 only: a segment of 0.1.0 (flags 0) keeps
     * its header byte for byte. */
    kr_put_be32(out + 24, kr_crc32c(0, out, 24));
    kr_put_be32(out + 28, flags);
}

void kr_seg_header_encode_v1(uint8_t out[KR_SEG_HEADER_BYTES], uint64_t base, uint32_t flags)
{
    header_fixed(out, 1, KR_SEG_HEADER_BYTES, base, flags);
}

void kr_seg_sync_encode(uint8_t out[KR_SEG_SYNC_BYTES], uint64_t synced, uint64_t next)
{
    kr_put_be64(out, synced);
    kr_put_be64(out + 8, next);
    kr_put_be32(out + 16, kr_crc32c(0, out, 16));
    kr_put_be32(out + 20, 0);
}

void kr_seg_header_encode(uint8_t out[KR_SEG_HEADER_V2_BYTES], uint64_t base)
{
    kr_seg_header_encode_flags(out, base, 0);
}

void kr_seg_header_encode_flags(uint8_t out[KR_SEG_HEADER_V2_BYTES], uint64_t base, uint32_t flags)
{
    header_fixed(out, KR_SEG_VERSION, KR_SEG_HEADER_V2_BYTES, base, flags);
    kr_seg_sync_encode(out + KR_SEG_SYNC_AT, KR_SEG_HEADER_V2_BYTES, base);
    memset(out + KR_SEG_SYNC_AT + KR_SEG_SYNC_BYTES, 0,
           KR_SEG_HEADER_V2_BYTES - KR_SEG_SYNC_AT - KR_SEG_SYNC_BYTES);
}

int kr_seg_header_decode(const uint8_t *in, size_t len, kr_seg_header *h)
{
    memset(h, 0, sizeof *h);
    if (len < KR_SEG_HEADER_BYTES || memcmp(in, KR_SEG_MAGIC, 8) != 0 ||
        kr_get_be32(in + 24) != kr_crc32c(0, in, 24) ||
        (kr_get_be32(in + 28) & ~(uint32_t)KR_SEG_F_ALL) != 0)
        return -1;
    h->version = kr_get_be32(in + 8);
    h->len = kr_get_be32(in + 12);
    h->base = kr_get_be64(in + 16);
    h->flags = kr_get_be32(in + 28);
    if (h->version == 1)
        return h->len == KR_SEG_HEADER_BYTES ? 0 : -1;
    if (h->version != 2 || h->len != KR_SEG_HEADER_V2_BYTES || len < KR_SEG_HEADER_V2_BYTES)
        return -1;
    const uint8_t *r = in + KR_SEG_SYNC_AT;
    h->synced = kr_get_be64(r);
    h->synced_next = kr_get_be64(r + 8);
    h->has_sync = kr_get_be32(r + 16) == kr_crc32c(0, r, 16) && kr_get_be32(r + 20) == 0 &&
                  h->synced >= KR_SEG_HEADER_V2_BYTES && h->synced_next >= h->base;
    return 0;
}

/* ---- batch header ---- */

uint32_t kr_batch_header_size(const kr_batch_hdr *h)
{
    return h->producer != 0 || h->raft_index != 0 ? KR_BATCH_HEADER_V2 : KR_BATCH_HEADER_BYTES;
}

/* The header length a magic announces, or 0 for no batch magic. */
static uint32_t magic_hlen(uint32_t magic)
{
    return magic == KR_BATCH_MAGIC      ? KR_BATCH_HEADER_BYTES
           : magic == KR_BATCH_MAGIC_V2 ? KR_BATCH_HEADER_V2
                                        : 0;
}

uint32_t kr_batch_header_put(uint8_t *out, const kr_batch_hdr *h)
{
    uint32_t hlen = kr_batch_header_size(h);
    kr_put_be32(out, hlen == KR_BATCH_HEADER_V2 ? KR_BATCH_MAGIC_V2 : KR_BATCH_MAGIC);
    kr_put_be32(out + 4, 0);
    kr_put_be64(out + 8, h->base);
    kr_put_be32(out + 16, h->count);
    kr_put_be32(out + 20, h->len);
    kr_put_be64(out + 24, h->max_ts);
    if (hlen == KR_BATCH_HEADER_V2) {
        kr_put_be64(out + 32, h->raft_index);
        kr_put_be64(out + 40, h->producer);
        kr_put_be64(out + 48, h->seq);
        kr_put_be32(out + 56, h->epoch);
        kr_put_be32(out + 60, 0);
    }
    return hlen;
}

/* The CRC covers the header from byte 8 (everything after the CRC) and
 * the payload. */
static uint32_t batch_crc(const uint8_t *hdr, uint32_t hlen, const void *payload, uint32_t len)
{
    uint32_t crc = kr_crc32c(0, hdr + 8, hlen - 8);
    return kr_crc32c(crc, payload, len);
}

void kr_batch_seal(uint8_t *batch)
{
    /* The payload follows its header: one pass over both (batch_crc's
     * value, without its second call's start-up). */
    uint32_t hlen = magic_hlen(kr_get_be32(batch));
    kr_put_be32(batch + 4, kr_crc32c(0, batch + 8, hlen - 8 + (size_t)kr_get_be32(batch + 20)));
}

uint32_t kr_batch_header_encode(uint8_t *out, const kr_batch_hdr *h, const void *payload)
{
    uint32_t hlen = kr_batch_header_put(out, h);
    kr_put_be32(out + 4, batch_crc(out, hlen, payload, h->len));
    return hlen;
}

int kr_batch_header_decode(const uint8_t *in, size_t avail, kr_batch_hdr *h)
{
    if (avail < KR_BATCH_HEADER_BYTES)
        return -1;
    uint32_t hlen = magic_hlen(kr_get_be32(in));
    if (hlen == 0 || avail < hlen)
        return -1;
    memset(h, 0, sizeof *h);
    h->hlen = hlen;
    h->crc = kr_get_be32(in + 4);
    h->base = kr_get_be64(in + 8);
    h->count = kr_get_be32(in + 16);
    h->len = kr_get_be32(in + 20);
    h->max_ts = kr_get_be64(in + 24);
    if (hlen == KR_BATCH_HEADER_V2) {
        h->raft_index = kr_get_be64(in + 32);
        h->producer = kr_get_be64(in + 40);
        h->seq = kr_get_be64(in + 48);
        h->epoch = kr_get_be32(in + 56);
        if (kr_get_be32(in + 60) != 0)
            return -1;
    }
    if (h->count == 0 || h->len < h->count || h->len > KR_BATCH_MAX_PAYLOAD)
        return -1;
    /* The offset after the batch, base + count, must exist. */
    if (h->count > UINT64_MAX - h->base)
        return -1;
    return 0;
}

int kr_batch_verify(const uint8_t *hdr, const void *payload, uint32_t len)
{
    uint32_t hlen = magic_hlen(kr_get_be32(hdr));
    return hlen != 0 && batch_crc(hdr, hlen, payload, len) == kr_get_be32(hdr + 4);
}

/* ---- payload ---- */

/*
 * Read the event at p (at most `left` bytes): a definite array of 4 or 5
 * items whose first is the uint `offset`. Only the first item's head is
 * decoded beyond the walk that finds the event's end.
 * @return the event's length, or 0 when it is not such an event.
 */
static size_t event_at(const uint8_t *p, size_t left, uint64_t offset)
{
    kr_cbor_item ev, first;
    if (kr_cbor_read(p, left, &ev) < 0 || ev.kind != KR_CBOR_ARRAY || ev.indefinite ||
        (ev.u != 4 && ev.u != 5))
        return 0;
    if (kr_cbor_read(p + ev.head_len, ev.raw_len - ev.head_len, &first) < 0 ||
        first.kind != KR_CBOR_UINT || first.u != offset)
        return 0;
    return ev.raw_len;
}

int kr_batch_payload_check(const kr_batch_hdr *h, const uint8_t *payload)
{
    size_t pos = 0;
    for (uint32_t i = 0; i < h->count; i++) {
        size_t n = event_at(payload + pos, h->len - pos, h->base + i);
        if (n == 0)
            return -1;
        pos += n;
    }
    return pos == h->len ? 0 : -1;
}

long kr_batch_locate(const kr_batch_hdr *h, const uint8_t *payload, uint64_t offset)
{
    if (offset < h->base || offset - h->base >= h->count)
        return -1;
    uint64_t want = offset - h->base;
    size_t pos = 0;
    for (uint64_t i = 0; i < want; i++) {
        kr_cbor_item ev;
        if (kr_cbor_read(payload + pos, h->len - pos, &ev) < 0)
            return -1;
        pos += ev.raw_len;
    }
    /* The event found must be the one asked for. */
    if (event_at(payload + pos, h->len - pos, offset) == 0)
        return -1;
    return (long)pos;
}

/* ---- scan ---- */

/* A read-only view of the file through a window, plus one buffer for
 * batches larger than the window. */
typedef struct reader {
    int fd;
    uint64_t file_len;
    uint8_t *win; /* SCAN_WINDOW bytes, or the file's size if smaller */
    size_t win_cap;
    uint64_t win_pos; /* file position of win[0] */
    size_t win_len;   /* valid bytes in win */
    uint8_t *big;     /* for n > win_cap; grows to the largest batch */
    size_t big_cap;
} reader;

/* pread exactly n bytes at pos (the caller made sure they exist).
 * @return 0, or -1 with errno (EIO for a file that shrank under us). */
static int pread_full(int fd, uint8_t *dst, size_t n, uint64_t pos)
{
    while (n > 0) {
        ssize_t r = pread(fd, dst, n, (off_t)pos);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = EIO;
            return -1;
        }
        dst += r;
        n -= (size_t)r;
        pos += (uint64_t)r;
    }
    return 0;
}

/*
 * Make bytes [pos, pos + n) of the file available in memory (pos + n must
 * be <= file_len). The pointer stays valid until the next call.
 * @return the bytes, or NULL with errno set.
 */
static const uint8_t *rd_get(reader *r, uint64_t pos, size_t n)
{
    if (n <= r->win_cap) {
        if (pos >= r->win_pos && pos + n <= r->win_pos + r->win_len)
            return r->win + (pos - r->win_pos);
        size_t want = r->win_cap;
        if (r->file_len - pos < want)
            want = (size_t)(r->file_len - pos);
        r->win_len = 0;
        if (pread_full(r->fd, r->win, want, pos) < 0)
            return NULL;
        r->win_pos = pos;
        r->win_len = want;
        return r->win;
    }
    if (n > r->big_cap) {
        uint8_t *b = malloc(n);
        if (b == NULL)
            return NULL;
        free(r->big);
        r->big = b;
        r->big_cap = n;
    }
    if (pread_full(r->fd, r->big, n, pos) < 0)
        return NULL;
    return r->big;
}

/*
 * The CRC of a batch at pos, computed a window at a time, so that a
 * candidate met while searching costs no allocation until it is known to be
 * a batch. @return 1 when it matches, 0 when not, -1 on an I/O error.
 */
static int crc_streamed(reader *r, const uint8_t *hdr, uint32_t hlen, uint64_t pos, uint32_t len)
{
    uint32_t want = kr_get_be32(hdr + 4);
    uint32_t crc = kr_crc32c(0, hdr + 8, hlen - 8);
    uint64_t p = pos + hlen, end = p + len;
    while (p < end) {
        size_t n = end - p < r->win_cap ? (size_t)(end - p) : r->win_cap;
        const uint8_t *b = rd_get(r, p, n);
        if (b == NULL)
            return -1;
        crc = kr_crc32c(crc, b, n);
        p += n;
    }
    return crc == want;
}

/* What base offset batch_at accepts, relative to the caller's. */
typedef enum base_rule {
    BASE_EXACT, /* equal: the next batch of a contiguous stream */
    BASE_ABOVE, /* greater: a batch found after damage */
    BASE_FROM   /* equal or greater: a compacted segment, offsets with gaps */
} base_rule;

/*
 * Is there a good batch at pos whose base offset satisfies the caller's
 * rule against `base`? Fills *h.
 * @return 1 yes, 0 no, -1 on an I/O or memory error.
 */
static int batch_at(reader *r, uint64_t pos, uint64_t base, base_rule rule, kr_batch_hdr *h)
{
    if (r->file_len - pos < KR_BATCH_HEADER_BYTES)
        return 0;
    size_t avail =
        r->file_len - pos < KR_BATCH_HEADER_MAX ? (size_t)(r->file_len - pos) : KR_BATCH_HEADER_MAX;
    const uint8_t *b = rd_get(r, pos, avail);
    if (b == NULL)
        return -1;
    uint8_t hdr[KR_BATCH_HEADER_MAX];
    memcpy(hdr, b, avail);
    if (kr_batch_header_decode(hdr, avail, h) < 0)
        return 0;
    if (rule == BASE_EXACT   ? h->base != base
        : rule == BASE_ABOVE ? h->base <= base
                             : h->base < base)
        return 0;
    if (r->file_len - pos - h->hlen < h->len)
        return 0;
    size_t total = h->hlen + (size_t)h->len;
    if (total > r->win_cap) {
        /* A large batch: check its CRC a window at a time before growing a
         * buffer for it, so that a corrupt length costs no allocation. */
        int ok = crc_streamed(r, hdr, h->hlen, pos, h->len);
        if (ok <= 0)
            return ok;
        b = rd_get(r, pos, total);
        if (b == NULL)
            return -1;
    } else {
        b = rd_get(r, pos, total);
        if (b == NULL)
            return -1;
        if (!kr_batch_verify(b, b + h->hlen, h->len))
            return 0;
    }
    return kr_batch_payload_check(h, b + h->hlen) == 0;
}

/*
 * Search forward from `from` for the next good batch with a base offset
 * greater than `after`: scan the window for "KRB", the part both versions'
 * magics share, with memmem and verify each hit. @return 1 and *found, *h;
 * 0 when there is none; -1 on an I/O or memory error.
 */
static int search(reader *r, uint64_t from, uint64_t after, uint64_t *found, kr_batch_hdr *h)
{
    static const uint8_t magic[3] = {'K', 'R', 'B'};
    uint64_t s = from;
    while (r->file_len - s >= KR_BATCH_HEADER_BYTES) {
        /* Use what the window holds from s on when that is enough for a
         * header (or reaches the end of the file), else move it. */
        uint64_t wend = r->win_pos + r->win_len;
        const uint8_t *w;
        size_t n;
        if (s >= r->win_pos && s < wend &&
            (wend - s >= KR_BATCH_HEADER_BYTES || wend == r->file_len)) {
            w = r->win + (s - r->win_pos);
            n = (size_t)(wend - s);
        } else {
            n = r->file_len - s < r->win_cap ? (size_t)(r->file_len - s) : r->win_cap;
            w = rd_get(r, s, n);
            if (w == NULL)
                return -1;
        }
        const uint8_t *m = memmem(w, n, magic, sizeof magic);
        if (m == NULL) {
            /* The magic may straddle the end of this window. */
            s += n - (sizeof magic - 1);
            continue;
        }
        uint64_t cand = s + (uint64_t)(m - w);
        int rc = batch_at(r, cand, after, BASE_ABOVE, h);
        if (rc != 0) {
            *found = cand;
            return rc;
        }
        s = cand + 1;
    }
    return 0;
}

int kr_seg_scan_fd(int fd, kr_seg_scan *out, kr_seg_batch_cb cb, void *arg)
{
    reader r = {.fd = fd};
    struct stat st;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (fstat(fd, &st) < 0)
        return -1;
    if (st.st_size < KR_SEG_HEADER_BYTES) {
        errno = EINVAL;
        return -1;
    }
    r.file_len = (uint64_t)st.st_size;
    r.win_cap = r.file_len < SCAN_WINDOW ? (size_t)r.file_len : SCAN_WINDOW;
    r.win = malloc(r.win_cap);
    if (r.win == NULL)
        return -1;

    size_t hlen = r.file_len < KR_SEG_HEADER_V2_BYTES ? (size_t)r.file_len : KR_SEG_HEADER_V2_BYTES;
    const uint8_t *b = rd_get(&r, 0, hlen);
    if (b == NULL)
        goto fail;
    if (kr_seg_header_decode(b, hlen, &out->hdr) < 0) {
        errno = EINVAL;
        goto fail;
    }
    out->base = out->hdr.base;
    out->compacted = (out->hdr.flags & KR_SEG_F_COMPACTED) != 0;
    out->file_len = r.file_len;
    out->next = out->base;

    uint64_t pos = out->hdr.len;
    while (pos < r.file_len) {
        kr_batch_hdr h;
        int ok = batch_at(&r, pos, out->next, out->compacted ? BASE_FROM : BASE_EXACT, &h);
        if (ok < 0)
            goto fail;
        if (ok == 0) {
            uint64_t found = 0;
            if (out->n_corrupt < KR_SEG_MAX_CORRUPT) {
                ok = search(&r, pos + 1, out->next, &found, &h);
                if (ok < 0)
                    goto fail;
            }
            if (ok == 0) {
                out->torn = true;
                break;
            }
            out->corrupt[out->n_corrupt++] =
                (kr_corrupt){.pos = pos, .end = found, .first = out->next, .next = h.base};
            pos = found;
        }
        if (cb != NULL)
            cb(arg, &h, pos);
        out->batches++;
        if (h.max_ts > out->max_ts)
            out->max_ts = h.max_ts;
        out->next = h.base + h.count;
        pos += h.hlen + (uint64_t)h.len;
    }
    out->good_end = pos;
    rc = 0;
fail:
    free(r.win);
    free(r.big);
    return rc;
}
