/*
 * store/view_producers.c - idempotent producers' records in the view (see
 * view.h): registrations ('r', written with the WAL on when a producer
 * registers) and durable states ('p', written by checkpoints in the same
 * table file as the marker they belong to). The two live under different
 * tags so that a checkpoint file never overlaps the memtable, which holds
 * the registrations: RocksDB would flush it before every such ingestion.
 */
#include "store/view_int.h"

#include <stdio.h>
#include <string.h>

#include "proto/cbor.h"
#include "util/byteorder.h"

/* Put tag | topic | part -> [a(, b)] into the batch. */
static void batch_pair(kr_view_batch *b, const char *topic, size_t tlen, const uint8_t *part,
                       size_t plen, uint64_t x, bool has_y, uint64_t y)
{
    uint8_t val[32];
    uint64_t v[2] = {x, y};
    size_t vlen = kr_view_encode_uints(val, v, has_y ? 2 : 1);
    if (vlen == 0) {
        if (b->failed == NULL)
            b->failed = "out of memory";
        return;
    }
    if (kr_view_batch_key(b, TAG_REGISTER, topic, tlen, part, plen) < 0)
        return;
    rocksdb_writebatch_put(b->wb, (const char *)b->key.data, b->key.len, (const char *)val, vlen);
}

void kr_view_batch_registration(kr_view_batch *b, const char *topic, size_t tlen, const uint8_t *id,
                                size_t idlen, uint64_t pid, uint32_t epoch)
{
    if (idlen > 0)
        batch_pair(b, topic, tlen, id, idlen, pid, true, epoch);
}

void kr_view_batch_next_pid(kr_view_batch *b, const char *topic, size_t tlen, uint64_t next_pid)
{
    batch_pair(b, topic, tlen, NULL, 0, next_pid, false, 0);
}

void kr_view_batch_unregister(kr_view_batch *b, const char *topic, size_t tlen, const uint8_t *id,
                              size_t idlen)
{
    if (idlen == 0 || kr_view_batch_key(b, TAG_REGISTER, topic, tlen, id, idlen) < 0)
        return;
    rocksdb_writebatch_delete(b->wb, (const char *)b->key.data, b->key.len);
}

void kr_view_batch_drop_producer_states(kr_view_batch *b, const char *topic, size_t tlen)
{
    kr_view_batch_drop_tag(b, TAG_PRODUCER, topic, tlen);
}

void kr_view_ckpt_producer(kr_view_ckpt *c, const char *topic, size_t tlen, uint64_t pid,
                           const uint8_t *state, size_t len)
{
    uint8_t part[8];
    kr_put_be64(part, pid);
    kr_view_ckpt_entry(c, TAG_PRODUCER, topic, tlen, part, sizeof part, state, len);
}

/* ---- reading them back ---- */

struct prod_walk {
    int (*fn)(void *arg, const kr_view_prod_rec *r);
    void *arg;
    int stopped; /* what fn returned to stop, or 0 */
};

/* A CBOR array of one or two uints. @return how many, or 0 when not. */
static int decode_pair(const uint8_t *val, size_t vlen, uint64_t *a, uint64_t *b)
{
    kr_cbor_item arr, x;
    kr_cbor_iter it;
    if (kr_cbor_read_exact(val, vlen, &arr) < 0 || arr.kind != KR_CBOR_ARRAY || arr.indefinite ||
        arr.u < 1 || arr.u > 2)
        return 0;
    kr_cbor_iter_init(&it, &arr);
    if (kr_cbor_iter_next(&it, &x) != 1 || x.kind != KR_CBOR_UINT)
        return 0;
    *a = x.u;
    if (arr.u == 1)
        return 1;
    if (kr_cbor_iter_next(&it, &x) != 1 || x.kind != KR_CBOR_UINT)
        return 0;
    *b = x.u;
    return 2;
}

static int state_record(void *arg, const uint8_t *part, size_t plen, const uint8_t *val,
                        size_t vlen)
{
    struct prod_walk *pw = arg;
    if (plen != 8)
        return 0;
    kr_view_prod_rec r = {
        .kind = KR_VIEW_PROD_STATE, .pid = kr_get_be64(part), .state = val, .state_len = vlen};
    return pw->stopped = pw->fn(pw->arg, &r);
}

static int registration_record(void *arg, const uint8_t *part, size_t plen, const uint8_t *val,
                               size_t vlen)
{
    struct prod_walk *pw = arg;
    uint64_t a = 0, b = 0;
    int n = decode_pair(val, vlen, &a, &b);
    kr_view_prod_rec r = {.pid = a};
    if (plen == 0 && n == 1) {
        r.kind = KR_VIEW_PROD_NEXT_PID;
    } else if (plen > 0 && n == 2 && b <= UINT32_MAX && a != 0) {
        r.kind = KR_VIEW_PROD_REG;
        r.epoch = (uint32_t)b;
        r.id = part;
        r.id_len = plen;
    } else {
        return 0; /* not a record this version wrote */
    }
    return pw->stopped = pw->fn(pw->arg, &r);
}

static int unlocked_producers(kr_view *v, const char *topic, size_t tlen,
                              int (*fn)(void *arg, const kr_view_prod_rec *r), void *arg, char *err,
                              size_t errlen)
{
    struct prod_walk pw = {fn, arg, 0};
    if (kr_view_each_unlocked(v, TAG_PRODUCER, topic, tlen, state_record, &pw,
                              "reading producer states failed", err, errlen) < 0)
        return -1;
    if (pw.stopped != 0)
        return 0;
    return kr_view_each_unlocked(v, TAG_REGISTER, topic, tlen, registration_record, &pw,
                                 "reading producer registrations failed", err, errlen);
}

int kr_view_producers(kr_view *v, const char *topic, size_t tlen,
                      int (*fn)(void *arg, const kr_view_prod_rec *r), void *arg, char *err,
                      size_t errlen)
{
    int rc;
    SHARED(v, rc = unlocked_producers(v, topic, tlen, fn, arg, err, errlen));
    return rc;
}
