/*
 * store/checkpoint.c - the RocksDB half of a checkpoint (see checkpoint.h).
 *
 * One table file ingested at once, like the WAL-off batch and flush it
 * replaced, but without a batch and a memtable holding two more copies of
 * the checkpoint.
 */
#include "store/checkpoint.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/overlay.h"
#include "store/store_producers.h"

/* Folding one topic's frozen overlay into a checkpoint file. */
struct fold {
    kr_view *v;
    kr_view_ckpt *ck;
    const char *name;
    size_t nl;
    uint64_t keys;        /* live keys, kept exact: a put of a new key adds one */
    kr_view_probe *probe; /* which keys the view holds */
    kr_sched_pacer pace;  /* the checkpoint steps aside for the loop */
    char err[256];        /* why it failed ("" while it has not) */
};

static void fold_one(struct fold *f, const kr_ov_entry *e, bool live)
{
    if (e->tombstone) {
        if (live) {
            kr_view_ckpt_delete(f->ck, f->name, f->nl, e->key, e->key_len);
            f->keys--;
        }
    } else {
        kr_view_ckpt_put(f->ck, f->name, f->nl, e->key, e->key_len, e->event, e->ev_len);
        if (!live)
            f->keys++;
    }
}

/* Fold order[0..n) (n <= KR_VIEW_PROBE_BATCH), asking the view about them
 * at once. @return 0, or -1 with f->err saying why. */
static int fold_batch(struct fold *f, const kr_ov_entry **order, size_t n)
{
    kr_view_probe_key keys[KR_VIEW_PROBE_BATCH];
    bool live[KR_VIEW_PROBE_BATCH];
    for (size_t i = 0; i < n; i++)
        keys[i] = (kr_view_probe_key){.key = order[i]->key, .klen = order[i]->key_len};
    if (kr_view_probe_many(f->probe, keys, n, live) < 0) {
        snprintf(f->err, sizeof f->err, "%s", kr_view_probe_error(f->probe));
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        fold_one(f, order[i], live[i]);
    return 0;
}

/*
 * Fold a frozen overlay into the checkpoint file in key order (the order a
 * table file needs), counting the keys it adds: the view is asked which of
 * them it holds a batch of sorted keys at a time. Sorts in mem.
 * @return 0, or -1 with f->err saying why.
 */
static int fold_sorted(const kr_overlay *ov, kr_ov_sortmem *mem, struct fold *f)
{
    size_t n = kr_overlay_count(ov);
    if (n == 0)
        return 0;
    const kr_ov_entry **order;
    if (kr_overlay_sort_all(ov, mem, &order, &f->pace) < 0) {
        snprintf(f->err, sizeof f->err, "out of memory sorting %zu keys", n);
        return -1;
    }
    f->probe = kr_view_probe_new(f->v, f->name, f->nl);
    if (f->probe == NULL)
        snprintf(f->err, sizeof f->err, "cannot read the view (out of memory, or it is closed)");
    for (size_t i = 0; i < n && f->err[0] == '\0'; i += KR_VIEW_PROBE_BATCH) {
        (void)fold_batch(f, order + i, n - i < KR_VIEW_PROBE_BATCH ? n - i : KR_VIEW_PROBE_BATCH);
        kr_sched_pace(&f->pace);
    }
    kr_view_probe_free(f->probe);
    f->probe = NULL;
    return f->err[0] == '\0' ? 0 : -1;
}

/* Topics in the order of their stored keys: 'k' | name length | name. */
static int ck_cmp(const void *pa, const void *pb)
{
    const kr_ckpt_topic *a = pa, *b = pb;
    if (a->t->name_len != b->t->name_len)
        return a->t->name_len < b->t->name_len ? -1 : 1;
    return memcmp(a->t->name, b->t->name, a->t->name_len);
}

int kr_checkpoint_write(kr_view *v, kr_ckpt_topic *cks, size_t n, kr_ov_sortmem *mem, char *err,
                        size_t errlen)
{
    kr_ov_sortmem own = {0};
    kr_ov_sortmem *m = mem != NULL ? mem : &own;
    int rc = -1;
    qsort(cks, n, sizeof *cks, ck_cmp);
    kr_view_ckpt *ck = kr_view_ckpt_new(v, err, errlen);
    if (ck == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        kr_ckpt_topic *c = &cks[i];
        struct fold f = {
            .v = v, .ck = ck, .name = c->t->name, .nl = c->t->name_len, .keys = c->keys};
        if (c->ov != NULL && fold_sorted(c->ov, m, &f) < 0) {
            kr_view_ckpt_abort(ck);
            snprintf(err, errlen, "the checkpoint of topic %s failed: %s", c->t->name, f.err);
            goto out;
        }
        c->keys = f.keys;
    }
    for (size_t i = 0; i < n; i++)
        kr_view_ckpt_marker(ck, cks[i].t->name, cks[i].t->name_len, cks[i].next, cks[i].keys);
    /* The producers' states ('p' sorts after 'm'), with the marker they
     * belong to: the view never holds one without the other. */
    for (size_t i = 0; i < n; i++)
        kr_prod_ckpt_write(cks[i].prod, ck, cks[i].t->name, cks[i].t->name_len);
    rc = kr_view_ckpt_commit(ck, err, errlen);
out:
    kr_ov_sortmem_release(&own);
    return rc;
}
