/*
 * tests/fuzz/fuzz_segment.c - fuzz the segment scan (start-up recovery) and
 * hold it to its promises.
 *
 * Input: byte 0 is a mode, the rest is the file (or most of it):
 *   bit 0  prepend a valid segment header with base offset (byte 0 >> 3),
 *          so mutations spend their time on batches, not on the header
 *   bit 2  ... a version 2 one (64 bytes, its sync record saying nothing
 *          is synced), else a version 1 one (32 bytes)
 *   bit 1  fix the CRC of every batch header that decodes and fits, walking
 *          the file as the scan would, so payload checks and offset
 *          contiguity are reached past the CRC
 * The file goes into a memfd and kr_seg_scan_fd reads it. Then: every batch
 * reported good is read again at its reported position and must decode,
 * verify and pass the payload check; good batches and corrupt ranges tile
 * the file from the header to good_end in order; offsets run on from the
 * segment base, jumping forward only across a corrupt range; good_end <=
 * file_len, and a file not torn was read to its end; next and max_ts agree
 * with the batches seen. A broken promise traps.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "store/segment.h"
#include "util/byteorder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

/* Good batches as the callback reported them (more are not checked). */
#define MAX_SEEN 4096

typedef struct seen {
    int fd;
    size_t n;
    size_t total;
    uint64_t pos[MAX_SEEN];
    kr_batch_hdr h[MAX_SEEN];
} seen;

/* Re-read the batch at pos and check it the way the scan promises to. */
static void on_batch(void *arg, const kr_batch_hdr *h, uint64_t pos)
{
    seen *s = arg;
    uint8_t hdr[KR_BATCH_HEADER_MAX];
    kr_batch_hdr d;

    s->total++;
    ssize_t got = pread(s->fd, hdr, sizeof hdr, (off_t)pos);
    CHECK(got >= KR_BATCH_HEADER_BYTES);
    CHECK(kr_batch_header_decode(hdr, (size_t)got, &d) == 0);
    CHECK(d.base == h->base && d.count == h->count && d.len == h->len && d.max_ts == h->max_ts &&
          d.crc == h->crc && d.hlen == h->hlen && d.producer == h->producer && d.seq == h->seq &&
          d.epoch == h->epoch && d.raft_index == h->raft_index);
    uint8_t *payload = malloc(d.len);
    CHECK(payload != NULL);
    CHECK(pread(s->fd, payload, d.len, (off_t)(pos + d.hlen)) == (ssize_t)d.len);
    CHECK(kr_batch_verify(hdr, payload, d.len) == 1);
    CHECK(kr_batch_payload_check(&d, payload) == 0);
    /* Every event can be located, in increasing positions. */
    long last = -1;
    for (uint32_t i = 0; i < d.count && i < 64; i++) {
        long at = kr_batch_locate(&d, payload, d.base + i);
        CHECK(at > last && (uint64_t)at < d.len);
        last = at;
    }
    free(payload);
    if (s->n < MAX_SEEN) {
        s->pos[s->n] = pos;
        s->h[s->n] = *h;
        s->n++;
    }
}

/* Files up to this size are also checked against a naive search. */
#define NAIVE_MAX (64 * 1024)

/* Is there a good batch at pos: base == after when exact, else > after? */
static bool good_batch_at(const uint8_t *f, size_t len, uint64_t pos, uint64_t after, bool exact)
{
    kr_batch_hdr h;
    if (pos > len || len - pos < KR_BATCH_HEADER_BYTES)
        return false;
    const uint8_t *b = f + pos;
    if (kr_batch_header_decode(b, len - pos, &h) != 0 ||
        (exact ? h.base != after : h.base <= after) || h.len > len - pos - h.hlen)
        return false;
    return kr_batch_verify(b, b + h.hlen, h.len) && kr_batch_payload_check(&h, b + h.hlen) == 0;
}

/* The first position >= from holding a good batch with base > after; 0 if
 * none (0 is never a batch position). */
static uint64_t naive_search(const uint8_t *f, size_t len, uint64_t from, uint64_t after)
{
    for (uint64_t p = from; p + KR_BATCH_HEADER_BYTES <= len; p++)
        if (good_batch_at(f, len, p, after, false))
            return p;
    return 0;
}

/* Recompute the CRC of each batch header that decodes and fits, from the
 * end of the segment header on. */
static void fix_crcs(uint8_t *f, size_t len, size_t pos)
{
    while (pos + KR_BATCH_HEADER_BYTES <= len) {
        kr_batch_hdr h;
        if (kr_batch_header_decode(f + pos, len - pos, &h) == 0 && h.len <= len - pos - h.hlen) {
            uint8_t *payload = f + pos + h.hlen;
            kr_batch_header_encode(f + pos, &h, payload); /* same version: same fields */
            pos += h.hlen + h.len;
        } else {
            pos++;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;

    size_t hlen = (mode & 4) ? KR_SEG_HEADER_V2_BYTES : KR_SEG_HEADER_BYTES;
    size_t pre = (mode & 1) ? hlen : 0;
    size_t len = pre + size;
    uint8_t *file = malloc(len ? len : 1);
    CHECK(file != NULL);
    if (pre && hlen == KR_SEG_HEADER_BYTES)
        kr_seg_header_encode_v1(file, mode >> 3, 0);
    else if (pre)
        kr_seg_header_encode(file, mode >> 3);
    if (size)
        memcpy(file + pre, data, size);
    kr_seg_header hd;
    bool hdr_ok = kr_seg_header_decode(file, len, &hd) == 0;
    if (mode & 2)
        fix_crcs(file, len, hdr_ok ? hd.len : KR_SEG_HEADER_BYTES);

    int fd = memfd_create("fuzz_segment", MFD_CLOEXEC);
    CHECK(fd >= 0);
    for (size_t at = 0; at < len;) {
        ssize_t n = pwrite(fd, file + at, len - at, (off_t)at);
        CHECK(n > 0);
        at += (size_t)n;
    }

    static seen s;
    kr_seg_scan sc;
    s.fd = fd;
    s.n = 0;
    s.total = 0;
    int rc = kr_seg_scan_fd(fd, &sc, on_batch, &s);

    if (!hdr_ok) {
        CHECK(rc == -1);
        CHECK(s.total == 0);
        goto done;
    }
    uint64_t base = hd.base;
    CHECK(rc == 0);
    CHECK(sc.base == base && sc.hdr.len == hd.len && sc.hdr.version == hd.version);
    CHECK(sc.hdr.has_sync == hd.has_sync);
    CHECK(sc.file_len == len);
    CHECK(sc.good_end >= hd.len && sc.good_end <= sc.file_len);
    CHECK(sc.torn == (sc.good_end < sc.file_len));
    CHECK(sc.batches == s.total);
    CHECK(sc.n_corrupt <= KR_SEG_MAX_CORRUPT);

    /* Walk batches and corrupt ranges in file order: they tile
     * [header, good_end), and offsets run on from base. */
    if (s.n == s.total) {
        uint64_t at = hd.len, next = base, max_ts = 0;
        size_t c = 0;
        for (size_t i = 0; i < s.n; i++) {
            if (c < sc.n_corrupt && sc.corrupt[c].pos == at) {
                const kr_corrupt *k = &sc.corrupt[c];
                CHECK(k->end > k->pos && k->end <= sc.good_end);
                CHECK(k->first == next && k->next > k->first);
                CHECK(k->end == s.pos[i] && k->next == s.h[i].base);
                at = k->end;
                next = k->next;
                c++;
            }
            CHECK(s.pos[i] == at);
            CHECK(s.h[i].base == next);
            CHECK(s.h[i].count >= 1 && s.h[i].len >= s.h[i].count);
            at += s.h[i].hlen + (uint64_t)s.h[i].len;
            next = s.h[i].base + s.h[i].count;
            if (s.h[i].max_ts > max_ts)
                max_ts = s.h[i].max_ts;
        }
        CHECK(c == sc.n_corrupt); /* every range is followed by a good batch */
        CHECK(at == sc.good_end);
        CHECK(next == sc.next);
        CHECK(max_ts == sc.max_ts);
    }
    /* Ranges are inside the file and ordered, whatever was recorded. */
    for (size_t c = 0; c < sc.n_corrupt; c++) {
        CHECK(sc.corrupt[c].pos >= hd.len);
        CHECK(sc.corrupt[c].pos < sc.corrupt[c].end && sc.corrupt[c].end <= sc.file_len);
        if (c > 0)
            CHECK(sc.corrupt[c - 1].end <= sc.corrupt[c].pos);
    }
    /* Against a naive search (small files only): a torn tail holds no
     * batch the scan should have taken, and each corrupt range ends at the
     * first good batch after its start. */
    if (sc.torn) {
        CHECK(!good_batch_at(file, len, sc.good_end, sc.next, true));
        if (sc.n_corrupt < KR_SEG_MAX_CORRUPT && len <= NAIVE_MAX)
            CHECK(naive_search(file, len, sc.good_end + 1, sc.next) == 0);
    }
    for (size_t c = 0; c < sc.n_corrupt; c++) {
        const kr_corrupt *k = &sc.corrupt[c];
        CHECK(!good_batch_at(file, len, k->pos, k->first, true));
        if (len <= NAIVE_MAX)
            CHECK(naive_search(file, len, k->pos + 1, k->first) == k->end);
    }
done:
    close(fd);
    free(file);
    return 0;
}
