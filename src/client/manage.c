/*
 * client/manage.c - libkrappy's administration calls (PROTOCOL.md section
 * 9): DELETE_TOPIC, GROUP_SEEK, GROUP_DELETE, one round trip each.
 */
#include "client/client_internal.h"

/* The checks every call here starts with (the group's only when it takes
 * one). */
static krappy_err begin(krappy_client *c, const char *fn, const char *topic, bool takes_group,
                        const char *group)
{
    if (c == NULL)
        return KRAPPY_E_USAGE;
    kr_client_clear_error(c);
    krappy_err e = kr_client_need_name(c, fn, "topic", topic);
    if (e == KRAPPY_OK && takes_group)
        e = kr_client_need_name(c, fn, "group", group);
    return e;
}

krappy_err krappy_delete_topic(krappy_client *c, const char *topic)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e = begin(c, "krappy_delete_topic", topic, false, NULL);
    if (e != KRAPPY_OK)
        return e;
    kr_enc_delete_topic(kr_client_enc_begin(c), (kr_cid){false, 0}, topic);
    return kr_client_request(c, KRAPPY_T_DELETE_TOPIC, KRAPPY_T_OK, 0, &f, &r);
}

krappy_err krappy_group_seek(krappy_client *c, const char *topic, const char *group, krappy_seek to,
                             uint64_t value, uint64_t *cursor)
{
    static const kr_seek_kind kinds[] = {KR_SEEK_EARLIEST, KR_SEEK_LATEST, KR_SEEK_OFFSET,
                                         KR_SEEK_TIME};
    krappy_frame f;
    kr_reply r;
    uint64_t cur;
    krappy_err e = begin(c, "krappy_group_seek", topic, true, group);
    if (e != KRAPPY_OK)
        return e;
    if ((unsigned)to >= sizeof kinds / sizeof kinds[0])
        return kr_client_fail(c, KRAPPY_E_USAGE, "krappy_group_seek: `to` is not a krappy_seek");
    kr_enc_group_seek(kr_client_enc_begin(c), (kr_cid){false, 0}, topic, group, kinds[to], value);
    if ((e = kr_client_request(c, KRAPPY_T_GROUP_SEEK, KRAPPY_T_OK, 0, &f, &r)) != KRAPPY_OK)
        return e;
    if (!kr_reply_uint(&r, "cursor", &cur))
        return kr_client_bad_reply(c, "GROUP_SEEK", "no uint `cursor`");
    if (cursor != NULL)
        *cursor = cur;
    return KRAPPY_OK;
}

krappy_err krappy_group_delete(krappy_client *c, const char *topic, const char *group)
{
    krappy_frame f;
    kr_reply r;
    krappy_err e = begin(c, "krappy_group_delete", topic, true, group);
    if (e != KRAPPY_OK)
        return e;
    kr_enc_group_delete(kr_client_enc_begin(c), (kr_cid){false, 0}, topic, group);
    return kr_client_request(c, KRAPPY_T_GROUP_DELETE, KRAPPY_T_OK, 0, &f, &r);
}

const char *krappy_cleanup_name(int cleanup)
{
    return cleanup > 0 ? kr_cleanup_name((uint64_t)cleanup) : NULL;
}

void kr_client_settings_from(const kr_topic_config *tc, krappy_topic_settings *out)
{
    out->cleanup = (int)tc->v[KR_TC_CLEANUP];
    out->retention_bytes = tc->v[KR_TC_RETENTION_BYTES];
    out->retention_ms = tc->v[KR_TC_RETENTION_MS];
    out->delete_retention_ms = tc->v[KR_TC_DELETE_RETENTION_MS];
    out->segment_bytes = tc->v[KR_TC_SEGMENT_BYTES];
    out->segment_ms = tc->v[KR_TC_SEGMENT_MS];
}

krappy_err krappy_topic_config(krappy_client *c, const char *topic, const char *const *set,
                               size_t n, krappy_topic_settings *out)
{
    krappy_frame f;
    kr_reply r;
    kr_cbor_item m;
    kr_topic_config change = {0}, got;
    char msg[256];
    krappy_err e = begin(c, "krappy_topic_config", topic, false, NULL);
    if (e != KRAPPY_OK)
        return e;
    for (size_t i = 0; set != NULL && i < n; i++)
        if (set[i] == NULL || kr_tc_parse_assign(set[i], &change, msg, sizeof msg) < 0)
            return kr_client_fail(c, KRAPPY_E_USAGE, "krappy_topic_config: %s",
                                  set[i] == NULL ? "a setting is NULL" : msg);
    kr_enc_topic_config(kr_client_enc_begin(c), (kr_cid){false, 0}, topic, &change);
    if ((e = kr_client_request(c, KRAPPY_T_TOPIC_CONFIG, KRAPPY_T_OK, 0, &f, &r)) != KRAPPY_OK)
        return e;
    if (kr_cbor_map_find(&r.map, "config", &m) != 1 ||
        kr_tc_decode(&m, false, &got, msg, sizeof msg) != KRAPPY_OK || got.mask != KR_TC_ALL)
        return kr_client_bad_reply(c, "TOPIC_CONFIG", "no map `config` with every setting");
    if (out != NULL)
        kr_client_settings_from(&got, out);
    return KRAPPY_OK;
}
