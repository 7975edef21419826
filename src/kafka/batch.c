/*
 * kafka/batch.c - record batches v2 (see batch.h).
 */
#include "kafka/batch.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* kr_crc32c: the store's CRC-32C (hardware when the CPU has it). The one
 * include of it in the kafka layer; it is to move to util/crc32c.h. */
#include "util/crc32c.h"

/* Offsets within a batch header. */
#define OFF_LENGTH      8
#define OFF_EPOCH       12
#define OFF_MAGIC       16
#define OFF_CRC         17
#define OFF_ATTRIBUTES  21
#define OFF_LAST_DELTA  23
#define OFF_BASE_TS     27
#define OFF_MAX_TS      35
#define OFF_PRODUCER_ID 43
#define OFF_EPOCH_P     51
#define OFF_BASE_SEQ    53
#define OFF_COUNT       57
/* The header bytes batch_length counts (everything after it). */
#define LENGTH_MIN (KR_KAFKA_BATCH_HEADER - OFF_EPOCH)
/* A record takes at least 7 bytes: length, attributes, two deltas, two
 * lengths and a header count of one byte each. */
#define RECORD_MIN 7
/* Room reserved for a record's length varint before its size is known. */
#define LEN_RESERVE 5

static int say(kr_kafka_err *err, kr_kafka_err code, char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Report an error through *err and msg. @return -1. */
static int say(kr_kafka_err *err, kr_kafka_err code, char *msg, size_t msglen, const char *fmt, ...)
{
    *err = code;
    if (msglen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, msglen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* a + b with two's-complement wrap-around instead of undefined behaviour:
 * a corrupt but CRC-correct batch may carry any deltas. */
static int64_t add_wrap(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}

void kr_kafka_batch_iter_init(kr_kafka_batch_iter *it, const uint8_t *records, size_t len)
{
    kr_kafka_rd_init(&it->rd, records, len);
}

/* The checks of a batch's attributes, in the order a producer most wants
 * to hear them. @return 0, or -1 with err and msg. */
static int check_attributes(int16_t attrs, kr_kafka_err *err, char *msg, size_t msglen)
{
    int codec = attrs & KR_KAFKA_CODEC_MASK;
    if (codec > KR_KAFKA_CODEC_ZSTD)
        return say(err, KR_KAFKA_ERR_UNSUPPORTED_COMPRESSION_TYPE, msg, msglen,
                   "record batch compression codec %d is not one of none, gzip, snappy, lz4 "
                   "and zstd",
                   codec);
    if (attrs & KR_KAFKA_ATTR_CONTROL)
        return say(err, KR_KAFKA_ERR_INVALID_RECORD, msg, msglen,
                   "control batches (transaction markers) are not supported: krappy has no "
                   "transactions");
    if (attrs & KR_KAFKA_ATTR_TRANSACTIONAL)
        return say(err, KR_KAFKA_ERR_INVALID_RECORD, msg, msglen,
                   "transactional batches are not supported: produce without a "
                   "transactional.id");
    return 0;
}

int kr_kafka_batch_next(kr_kafka_batch_iter *it, kr_kafka_batch *b, kr_kafka_err *err, char *msg,
                        size_t msglen)
{
    kr_kafka_rd *r = &it->rd;
    size_t left = kr_kafka_rd_left(r);
    int rc;

    if (left == 0)
        return 0;
    if (left <= OFF_MAGIC) {
        rc = say(err, KR_KAFKA_ERR_CORRUPT_MESSAGE, msg, msglen,
                 "%zu bytes are too few for a record batch", left);
        goto fail;
    }
    const uint8_t *start = r->p;
    b->base_offset = kr_kafka_rd_i64(r);
    int32_t length = kr_kafka_rd_i32(r);
    int magic = (int8_t)start[OFF_MAGIC];
    if (magic == 0 || magic == 1) {
        rc = say(err, KR_KAFKA_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT, msg, msglen,
                 "legacy message sets (magic %d) are not supported: use a client that sends "
                 "record batches v2 (Kafka 0.11 and later, Produce v3+)",
                 magic);
        goto fail;
    }
    if (magic != KR_KAFKA_BATCH_MAGIC) {
        rc = say(err, KR_KAFKA_ERR_CORRUPT_MESSAGE, msg, msglen,
                 "record batch magic %d is unknown (2 is expected)", magic);
        goto fail;
    }
    if (length < LENGTH_MIN || (size_t)length > kr_kafka_rd_left(r)) {
        rc = say(err, KR_KAFKA_ERR_CORRUPT_MESSAGE, msg, msglen,
                 "record batch length %d does not fit the %zu bytes after it (at least %d are "
                 "needed)",
                 length, kr_kafka_rd_left(r), LENGTH_MIN);
        goto fail;
    }
    size_t total = OFF_EPOCH + (size_t)length;
    uint32_t want = kr_crc32c(0, start + OFF_ATTRIBUTES, total - OFF_ATTRIBUTES);

    b->partition_leader_epoch = kr_kafka_rd_i32(r);
    (void)kr_kafka_rd_i8(r);
    uint32_t crc = kr_kafka_rd_u32(r);
    b->attributes = kr_kafka_rd_i16(r);
    b->last_offset_delta = kr_kafka_rd_i32(r);
    b->base_timestamp = kr_kafka_rd_i64(r);
    b->max_timestamp = kr_kafka_rd_i64(r);
    b->producer_id = kr_kafka_rd_i64(r);
    b->producer_epoch = kr_kafka_rd_i16(r);
    b->base_sequence = kr_kafka_rd_i32(r);
    b->count = kr_kafka_rd_i32(r);
    b->records_len = total - KR_KAFKA_BATCH_HEADER;
    b->records = kr_kafka_rd_raw(r, b->records_len);
    if (b->records == NULL)
        b->records = start + KR_KAFKA_BATCH_HEADER;
    if (crc != want) {
        rc = say(err, KR_KAFKA_ERR_CORRUPT_MESSAGE, msg, msglen,
                 "record batch at offset %lld: CRC-32C is 0x%08x, the bytes give 0x%08x",
                 (long long)b->base_offset, crc, want);
        goto fail;
    }
    if (check_attributes(b->attributes, err, msg, msglen) < 0) {
        rc = -1;
        goto fail;
    }
    if (b->count < 0) {
        rc = say(err, KR_KAFKA_ERR_CORRUPT_MESSAGE, msg, msglen,
                 "record batch at offset %lld has a negative record count (%d)",
                 (long long)b->base_offset, b->count);
        goto fail;
    }
    return 1;

fail:
    kr_kafka_rd_fail(r, "bad record batch");
    return rc;
}

kr_kafka_err kr_kafka_record_iter_init(kr_kafka_record_iter *it, const kr_kafka_batch *b,
                                       kr_buf *scratch, size_t max_bytes, char *msg, size_t msglen)
{
    int codec = b->attributes & KR_KAFKA_CODEC_MASK;

    it->batch = b;
    it->index = 0;
    kr_kafka_rd_init(&it->rd, b->records, b->records_len);
    if (codec == KR_KAFKA_CODEC_NONE || (b->records_len == 0 && b->count == 0))
        return KR_KAFKA_ERR_NONE;
    kr_buf_reset(scratch);
    kr_kafka_err e =
        kr_kafka_decompress(codec, b->records, b->records_len, scratch, max_bytes, msg, msglen);
    if (e != KR_KAFKA_ERR_NONE) {
        kr_kafka_rd_init(&it->rd, NULL, 0);
        it->index = b->count; /* nothing more to read */
        return e;
    }
    kr_kafka_rd_init(&it->rd, scratch->data, scratch->len);
    return KR_KAFKA_ERR_NONE;
}

/* Read the headers of a record: count them, check each. */
static void skip_headers(kr_kafka_rd *r, int32_t n)
{
    for (int32_t i = 0; i < n && kr_kafka_rd_ok(r); i++) {
        int32_t klen = kr_kafka_rd_varint(r);
        if (klen < 0) {
            kr_kafka_rd_fail(r, "a header key is null");
            return;
        }
        if ((size_t)klen > kr_kafka_rd_left(r)) {
            kr_kafka_rd_fail(r, "a header key runs past the record");
            return;
        }
        (void)kr_kafka_rd_raw(r, (size_t)klen);
        (void)kr_kafka_rd_vbytes(r);
    }
}

/* A varint of one or two bytes at *p (before end), as unsigned.
 * @return false for a longer one, or one cut short. */
static inline bool short_uvar(const uint8_t **p, const uint8_t *end, uint32_t *u)
{
    const uint8_t *q = *p;
    if (q < end && q[0] < 0x80) {
        *u = q[0];
        *p = q + 1;
        return true;
    }
    if (end - q >= 2 && q[1] < 0x80) {
        *u = (uint32_t)(q[0] & 0x7f) | (uint32_t)q[1] << 7;
        *p = q + 2;
        return true;
    }
    return false;
}

static inline int32_t unzigzag(uint32_t u)
{
    return (int32_t)((u >> 1) ^ (0u - (u & 1)));
}

/* Varint-length bytes at *p (before end) whose length takes one or two
 * bytes, or null. @return false for anything else. */
static inline bool short_vbytes(const uint8_t **p, const uint8_t *end, kr_kafka_bytes *b)
{
    uint32_t u;
    if (!short_uvar(p, end, &u))
        return false;
    int32_t len = unzigzag(u);
    if (len == -1) {
        *b = (kr_kafka_bytes){NULL, -1};
        return true;
    }
    if (len < 0 || len > end - *p)
        return false;
    *b = (kr_kafka_bytes){len > 0 ? *p : (const uint8_t *)"", len};
    *p += len;
    return true;
}

/*
 * The usual record - no headers, every varint of one or two bytes (its
 * length, deltas, key and value lengths: what producers send for records
 * of up to 8 KiB) - read with a look at each byte and no calls: a Produce
 * reads thousands per batch. Anything else, a malformed record included,
 * is left to the general reader, which reads the same record the same way
 * and says what is wrong. @return true with *rec filled but for its
 * index, offset and timestamp, and the reader past the record.
 */
static inline bool read_plain_record(kr_kafka_rd *r, kr_kafka_record *rec, int64_t *ts_delta)
{
    const uint8_t *p = r->p;
    uint32_t u, ts_u, off_u;
    if (r->err != NULL || !short_uvar(&p, r->end, &u))
        return false;
    int32_t len = unzigzag(u);
    if (len < RECORD_MIN - 1 || len > r->end - p)
        return false;
    const uint8_t *end = p + len;
    int8_t attributes = (int8_t)*p++;
    if (!short_uvar(&p, end, &ts_u) || !short_uvar(&p, end, &off_u) ||
        !short_vbytes(&p, end, &rec->key) || !short_vbytes(&p, end, &rec->value) || end - p != 1 ||
        *p != 0 /* no headers, nothing after */)
        return false;
    rec->attributes = attributes;
    *ts_delta = unzigzag(ts_u);
    rec->offset_delta = unzigzag(off_u);
    rec->header_count = 0;
    rec->headers = end;
    rec->headers_len = 0;
    r->p = end;
    return true;
}

int kr_kafka_record_next(kr_kafka_record_iter *it, kr_kafka_record *rec, kr_kafka_err *err,
                         char *msg, size_t msglen)
{
    const kr_kafka_batch *b = it->batch;
    kr_kafka_rd *r = &it->rd;
    int64_t ts_delta;

    if (it->index < b->count && read_plain_record(r, rec, &ts_delta))
        goto done;
    if (it->index >= b->count) {
        size_t left = kr_kafka_rd_left(r);
        if (left == 0)
            return 0;
        kr_kafka_rd_fail(r, "bytes after the last record");
        return say(err, KR_KAFKA_ERR_CORRUPT_MESSAGE, msg, msglen,
                   "record batch at offset %lld: %zu bytes after its %d records",
                   (long long)b->base_offset, left, b->count);
    }
    int32_t len = kr_kafka_rd_varint(r);
    if (kr_kafka_rd_ok(r) && (len < RECORD_MIN - 1 || (size_t)len > kr_kafka_rd_left(r)))
        kr_kafka_rd_fail(r, "its length does not fit the batch");
    kr_kafka_rd body;
    const uint8_t *p = kr_kafka_rd_ok(r) ? kr_kafka_rd_raw(r, (size_t)len) : NULL;
    kr_kafka_rd_init(&body, p, p != NULL ? (size_t)len : 0);
    if (!kr_kafka_rd_ok(r))
        kr_kafka_rd_fail(&body, r->err);

    rec->attributes = kr_kafka_rd_i8(&body);
    ts_delta = kr_kafka_rd_varlong(&body);
    rec->offset_delta = kr_kafka_rd_varint(&body);
    rec->key = kr_kafka_rd_vbytes(&body);
    rec->value = kr_kafka_rd_vbytes(&body);
    rec->header_count = kr_kafka_rd_varint(&body);
    if (kr_kafka_rd_ok(&body) &&
        (rec->header_count < 0 || (size_t)rec->header_count > kr_kafka_rd_left(&body) / 2))
        kr_kafka_rd_fail(&body, "its header count does not fit the record");
    rec->headers = body.p;
    skip_headers(&body, rec->header_count);
    rec->headers_len = rec->headers != NULL ? (size_t)(body.p - rec->headers) : 0;
    if (kr_kafka_rd_ok(&body) && kr_kafka_rd_left(&body) > 0)
        kr_kafka_rd_fail(&body, "bytes after its last header");
    if (!kr_kafka_rd_ok(&body)) {
        kr_kafka_rd_fail(r, body.err);
        return say(err, KR_KAFKA_ERR_CORRUPT_MESSAGE, msg, msglen,
                   "record batch at offset %lld, record %d of %d: %s", (long long)b->base_offset,
                   it->index, b->count, body.err);
    }
done:
    rec->index = it->index;
    rec->offset = add_wrap(b->base_offset, rec->offset_delta);
    rec->timestamp = add_wrap(b->base_timestamp, ts_delta);
    it->index++;
    return 1;
}

void kr_kafka_header_iter_init(kr_kafka_rd *hr, const kr_kafka_record *r)
{
    kr_kafka_rd_init(hr, r->headers, r->headers_len);
}

bool kr_kafka_header_next(kr_kafka_rd *hr, kr_kafka_header *h)
{
    if (kr_kafka_rd_left(hr) == 0)
        return false;
    h->key = kr_kafka_rd_vbytes(hr);
    h->value = kr_kafka_rd_vbytes(hr);
    return kr_kafka_rd_ok(hr) && h->key.len >= 0;
}

/* ---- writing ---- */

void kr_kafka_batch_begin(kr_kafka_batch_writer *w, kr_buf *out)
{
    static const uint8_t zeros[KR_KAFKA_BATCH_HEADER];

    memset(w, 0, sizeof *w);
    w->out = out;
    w->start = out->len;
    w->rec_start = SIZE_MAX;
    kr_buf_append(out, zeros, sizeof zeros);
}

/* Bytes of varint-length bytes (-1: null). */
static inline size_t vbytes_size(kr_kafka_bytes b)
{
    return kr_kafka_uvar_size(kr_kafka_zigzag64(b.len)) + (size_t)(b.len > 0 ? b.len : 0);
}

/* Varint-length bytes at p (room checked by the caller). @return the
 * byte after them. */
static inline uint8_t *write_vbytes(uint8_t *p, kr_kafka_bytes b)
{
    p = kr_kafka_uvar_put(p, kr_kafka_zigzag64(b.len));
    if (b.len > 0) {
        memcpy(p, b.ptr, (size_t)b.len);
        p += b.len;
    }
    return p;
}

/*
 * A record without headers has a length known at once: written in front,
 * with one reservation, so nothing moves after - and written straight into
 * the reserved room, field by field, as a Fetch writes a megabyte of these
 * per answer. @return the body's length, or 0 when out refused to grow
 * (out->failed set).
 */
static size_t put_record_known(kr_kafka_batch_writer *w, int64_t ts_delta, int32_t offset_delta,
                               kr_kafka_bytes key, kr_kafka_bytes value)
{
    size_t body = 1 + kr_kafka_uvar_size(kr_kafka_zigzag64(ts_delta)) +
                  kr_kafka_uvar_size(kr_kafka_zigzag64(offset_delta)) + vbytes_size(key) +
                  vbytes_size(value) + 1;
    kr_buf *out = w->out;
    size_t need = LEN_RESERVE + body;
    /* The reservation's call is skipped while the room is there (within
     * max: a buffer may have been handed more capacity than its max). */
    size_t room = out->cap < out->max ? out->cap : out->max;
    if (body > INT32_MAX || ((out->failed || out->len > room || room - out->len < need) &&
                             kr_buf_reserve(out, need) < 0)) {
        out->failed = true;
        return 0;
    }
    uint8_t *p = kr_kafka_uvar_put(out->data + out->len, kr_kafka_zigzag64((int64_t)body));
    *p++ = 0; /* attributes */
    p = kr_kafka_uvar_put(p, kr_kafka_zigzag64(ts_delta));
    p = kr_kafka_uvar_put(p, kr_kafka_zigzag64(offset_delta));
    p = write_vbytes(p, key);
    p = write_vbytes(p, value);
    *p++ = 0; /* no headers */
    out->len = (size_t)(p - out->data);
    return body;
}

/* Take the next record's offset and timestamp: their deltas from the
 * batch's first. @return 0, or -1 when out of order or out of range (the
 * writer is then refused). */
static int record_deltas(kr_kafka_batch_writer *w, int64_t offset, int64_t ts, int64_t *ts_delta,
                         int32_t *offset_delta)
{
    if (w->rec_start != SIZE_MAX || w->count == INT32_MAX)
        goto bad;
    if (w->count == 0) {
        w->base_offset = offset;
        w->base_ts = ts;
        w->max_ts = ts;
    } else if (offset <= w->last_offset) {
        goto bad;
    }
    if (offset < w->base_offset || (uint64_t)offset - (uint64_t)w->base_offset > INT32_MAX)
        goto bad;
    w->last_offset = offset;
    if (ts > w->max_ts)
        w->max_ts = ts;
    *ts_delta = add_wrap(ts, -w->base_ts);
    *offset_delta = (int32_t)(offset - w->base_offset);
    return 0;
bad:
    w->bad = true;
    return -1;
}

int kr_kafka_record_put(kr_kafka_batch_writer *w, int64_t offset, int64_t ts, kr_kafka_bytes key,
                        kr_kafka_bytes value)
{
    int64_t ts_delta;
    int32_t offset_delta;
    if (key.len < -1 || value.len < -1) {
        w->bad = true;
        return -1;
    }
    if (record_deltas(w, offset, ts, &ts_delta, &offset_delta) < 0)
        return -1;
    if (put_record_known(w, ts_delta, offset_delta, key, value) == 0)
        return -1;
    w->count++;
    return 0;
}

int kr_kafka_record_begin(kr_kafka_batch_writer *w, int64_t offset, int64_t ts, kr_kafka_bytes key,
                          kr_kafka_bytes value, int32_t header_count)
{
    static const uint8_t zeros[LEN_RESERVE];
    int64_t ts_delta;
    int32_t offset_delta;

    if (header_count < 0 || key.len < -1 || value.len < -1) {
        w->bad = true;
        return -1;
    }
    if (record_deltas(w, offset, ts, &ts_delta, &offset_delta) < 0)
        return -1;
    w->headers_left = header_count;
    if (header_count == 0) {
        /* Its length went in front: record_end checks the body's. */
        size_t body = put_record_known(w, ts_delta, offset_delta, key, value);
        w->known_len = body;
        w->rec_start = body > 0 ? w->out->len - body : w->out->len;
        return 0;
    }
    w->rec_start = w->out->len;
    w->known_len = SIZE_MAX;
    kr_buf_append(w->out, zeros, sizeof zeros);
    kr_kafka_put_i8(w->out, 0);
    kr_kafka_put_varlong(w->out, ts_delta);
    kr_kafka_put_varint(w->out, offset_delta);
    kr_kafka_put_vbytes(w->out, key.ptr, key.len);
    kr_kafka_put_vbytes(w->out, value.ptr, value.len);
    kr_kafka_put_varint(w->out, header_count);
    return 0;
}

int kr_kafka_record_header(kr_kafka_batch_writer *w, kr_kafka_bytes key, kr_kafka_bytes value)
{
    if (w->rec_start == SIZE_MAX || w->headers_left <= 0 || key.len < 0 || value.len < -1) {
        w->bad = true;
        return -1;
    }
    kr_kafka_put_vbytes(w->out, key.ptr, key.len);
    kr_kafka_put_vbytes(w->out, value.ptr, value.len);
    w->headers_left--;
    return 0;
}

int kr_kafka_record_end(kr_kafka_batch_writer *w)
{
    kr_buf *out = w->out;
    uint8_t len[LEN_RESERVE];

    if (w->rec_start == SIZE_MAX || w->headers_left != 0)
        goto bad;
    if (out->failed) {
        w->rec_start = SIZE_MAX;
        return -1;
    }
    if (w->known_len != SIZE_MAX) {
        /* Its length went in front (put_record_known). */
        if (out->len - w->rec_start != w->known_len)
            goto bad;
        w->rec_start = SIZE_MAX;
        w->count++;
        return 0;
    }
    size_t body = out->len - w->rec_start - LEN_RESERVE;
    if (body > INT32_MAX)
        goto bad;
    /* The length goes in front of the body: write it where the reserve
     * began and close the gap. */
    size_t n = kr_kafka_varint_write(len, (int32_t)body);
    uint8_t *p = out->data + w->rec_start;
    memmove(p + n, p + LEN_RESERVE, body);
    memcpy(p, len, n);
    out->len -= LEN_RESERVE - n;
    w->rec_start = SIZE_MAX;
    w->count++;
    return 0;
bad:
    w->bad = true;
    w->rec_start = SIZE_MAX;
    return -1;
}

int32_t kr_kafka_batch_end(kr_kafka_batch_writer *w)
{
    kr_buf *out = w->out;
    size_t total = out->len - w->start;

    if (w->bad || w->rec_start != SIZE_MAX || out->failed || total - OFF_EPOCH > INT32_MAX) {
        out->len = w->start <= out->len ? w->start : out->len;
        return -1;
    }
    if (w->count == 0) {
        out->len = w->start;
        return 0;
    }
    size_t s = w->start;
    kr_kafka_patch_be(out, s, (uint64_t)w->base_offset, 8);
    kr_kafka_patch_be(out, s + OFF_LENGTH, total - OFF_EPOCH, 4);
    kr_kafka_patch_be(out, s + OFF_EPOCH, (uint32_t)w->leader_epoch, 4);
    kr_kafka_patch_be(out, s + OFF_MAGIC, KR_KAFKA_BATCH_MAGIC, 1);
    kr_kafka_patch_be(out, s + OFF_ATTRIBUTES, 0, 2);
    kr_kafka_patch_be(out, s + OFF_LAST_DELTA, (uint64_t)(w->last_offset - w->base_offset), 4);
    kr_kafka_patch_be(out, s + OFF_BASE_TS, (uint64_t)w->base_ts, 8);
    kr_kafka_patch_be(out, s + OFF_MAX_TS, (uint64_t)w->max_ts, 8);
    kr_kafka_patch_be(out, s + OFF_PRODUCER_ID, UINT64_MAX, 8);
    kr_kafka_patch_be(out, s + OFF_EPOCH_P, UINT16_MAX, 2);
    kr_kafka_patch_be(out, s + OFF_BASE_SEQ, UINT32_MAX, 4);
    kr_kafka_patch_be(out, s + OFF_COUNT, (uint32_t)w->count, 4);
    uint32_t crc = kr_crc32c(0, out->data + s + OFF_ATTRIBUTES, total - OFF_ATTRIBUTES);
    kr_kafka_patch_be(out, s + OFF_CRC, crc, 4);
    return w->count;
}
