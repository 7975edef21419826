/*
 * store/topic_config.c - a topic's settings: defaults, overrides, their
 * record in the view (topic_config.h).
 */
#include "store/topic_config.h"

#include "store/compact.h"
#include "store/job.h"
#include "store/store_int.h"

#include <stdio.h>
#include <string.h>

#include "util/log.h"

void kr_topic_config_defaults(const kr_store_opts *o, kr_topic_config *out)
{
    memset(out, 0, sizeof *out);
    out->mask = KR_TC_ALL;
    out->v[KR_TC_CLEANUP] = o->cleanup != 0 ? o->cleanup : KR_CLEANUP_DELETE;
    out->v[KR_TC_RETENTION_BYTES] = o->retention_bytes;
    out->v[KR_TC_RETENTION_MS] = o->retention_ms;
    out->v[KR_TC_DELETE_RETENTION_MS] = o->delete_retention_ms;
    out->v[KR_TC_SEGMENT_BYTES] =
        o->segment_bytes != 0 ? o->segment_bytes : KR_DEFAULT_SEGMENT_BYTES;
    out->v[KR_TC_SEGMENT_MS] = o->segment_ms;
}

void kr_topic_config_refresh(const kr_store *s, kr_topic *t)
{
    kr_topic_config_defaults(&s->o, &t->cfg);
    kr_tc_merge(&t->cfg, &t->own);
}

void kr_topic_config_set(kr_store *s, kr_topic *t, const kr_topic_config *set)
{
    kr_tc_merge(&t->own, set);
    kr_topic_config_refresh(s, t);
    kr_log(KR_LOG_INFO, "topic settings changed", KR_LOG_STR("topic", t->name),
           KR_LOG_STR("cleanup", kr_cleanup_name(t->cfg.v[KR_TC_CLEANUP])),
           KR_LOG_U64("retention_bytes", t->cfg.v[KR_TC_RETENTION_BYTES]),
           KR_LOG_U64("retention_ms", t->cfg.v[KR_TC_RETENTION_MS]),
           KR_LOG_U64("delete_retention_ms", t->cfg.v[KR_TC_DELETE_RETENTION_MS]),
           KR_LOG_U64("segment_bytes", t->cfg.v[KR_TC_SEGMENT_BYTES]),
           KR_LOG_U64("segment_ms", t->cfg.v[KR_TC_SEGMENT_MS]));
    if (t->ready) {
        kr_store_retention(s, t);
        kr_compact_poke(s, t);
    }
}

krappy_err kr_store_topic_configure(kr_store *s, const uint8_t *name, size_t len,
                                    const kr_topic_config *set, kr_topic **tout, kr_store_done done,
                                    void *arg, char *msg, size_t msglen)
{
    kr_store_result res = {0};
    kr_topic *t = kr_store_topic(s, name, len);
    if (t == NULL && kr_store_register(s, name, len, &t, NULL, NULL, &res) < 0) {
        snprintf(msg, msglen, "%s", res.msg);
        return res.err;
    }
    *tout = t;
    kr_topic_config own = t->own;
    kr_tc_merge(&own, set);
    kr_buf val;
    kr_buf_init(&val, 4096);
    kr_tc_encode(&val, &own);
    kr_view_batch *b = kr_view_batch_new();
    kr_job *j = kr_job_new(KR_JOB_LOGGED, t);
    if (val.failed || b == NULL || j == NULL) {
        kr_buf_free(&val);
        kr_view_batch_free(b);
        kr_job_free(j);
        snprintf(msg, msglen, "out of memory changing the settings of topic %s; nothing changed",
                 t->name);
        return KRAPPY_E_STORAGE;
    }
    kr_view_batch_settings(b, t->name, t->name_len, val.data, val.len);
    kr_buf_free(&val);
    j->logged.batch = b;
    j->done = done;
    j->arg = arg;
    kr_topic_config_set(s, t, set);
    kr_writer_submit(s->writer, j);
    return KRAPPY_OK;
}

int kr_topic_config_load(kr_store *s, kr_topic *t, char *err, size_t errlen)
{
    kr_buf val;
    kr_buf_init(&val, 1u << 20);
    int found = kr_view_settings(s->view, t->name, t->name_len, &val, err, errlen);
    if (found < 0) {
        kr_buf_free(&val);
        return -1;
    }
    memset(&t->own, 0, sizeof t->own);
    if (found > 0) {
        kr_cbor_item map;
        char why[256];
        if (kr_cbor_read_exact(val.data, val.len, &map) < 0 ||
            kr_tc_decode(&map, false, &t->own, why, sizeof why) != KRAPPY_OK) {
            memset(&t->own, 0, sizeof t->own);
            kr_log(KR_LOG_WARN,
                   "a topic's settings record cannot be read; the server's defaults apply "
                   "until TOPIC_CONFIG sets them again",
                   KR_LOG_STR("topic", t->name));
        }
    }
    kr_buf_free(&val);
    kr_topic_config_refresh(s, t);
    return 0;
}
