/*
 * store/topic_config.h - a topic's settings in the store (PROTOCOL.md
 * section 9, TOPIC_CONFIG): the server's flags give the defaults, a topic
 * overrides some of them, and the record of its overrides lives in the
 * view (WAL on), deleted with the topic.
 *
 * kr_topic_config_set is the one function that changes a topic's settings
 * in memory: TOPIC_CONFIG, the admin API, the Kafka listener's
 * AlterConfigs and (later) a replicated command all end there.
 */
#ifndef KR_STORE_TOPIC_CONFIG_H
#define KR_STORE_TOPIC_CONFIG_H

#include "store/store.h"

/* The server's defaults, every setting (from --cleanup, --retention-*,
 * --delete-retention-ms, --segment-*). */
void kr_topic_config_defaults(const kr_store_opts *o, kr_topic_config *out);

/* Recompute t->cfg: t->own over the server's defaults. */
void kr_topic_config_refresh(const kr_store *s, kr_topic *t);

/*
 * kr_topic_config_set - apply a change (the settings `set` names) to t in
 * memory, at once: t->own and t->cfg, then what depends on them
 * (retention may retire segments now; compaction may start). The values
 * were validated (kr_tc_decode or kr_tc_parse_assign). Not durable: see
 * kr_store_topic_configure.
 */
void kr_topic_config_set(kr_store *s, kr_topic *t, const kr_topic_config *set);

/*
 * kr_store_topic_configure - TOPIC_CONFIG with `set`: find the topic, or
 * create it (as PRODUCER_REGISTER does) when there is none, apply the change
 * (kr_topic_config_set) and queue the write of its settings record; `done`
 * runs once that survives kill -9 (res STORAGE when it could not be
 * written: the change then holds only until a restart).
 * @param t  receives the topic
 * @return KRAPPY_OK when queued; KRAPPY_E_STORAGE (msg filled) when not,
 *         and then nothing changed.
 */
krappy_err kr_store_topic_configure(kr_store *s, const uint8_t *name, size_t len,
                                    const kr_topic_config *set, kr_topic **t, kr_store_done done,
                                    void *arg, char *msg, size_t msglen);

/*
 * kr_topic_config_load - read a topic's settings record at start-up into
 * t->own and t->cfg. A record this version cannot read is logged and
 * ignored (the defaults apply).
 * @return 0, or -1 with err filled (the view could not be read).
 */
int kr_topic_config_load(kr_store *s, kr_topic *t, char *err, size_t errlen);

#endif
