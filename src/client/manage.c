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
