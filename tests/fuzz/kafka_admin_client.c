/*
 * tests/fuzz/kafka_admin_client.c - the admin requests librdkafka sends, for
 * tests/fuzz/kafka_capture.py (kcat has no admin commands). Not part of any
 * build: the capture script compiles it with -lrdkafka and runs it once.
 *
 *   kafka_admin_client HOST:PORT
 *
 * Creates topic "made" (one partition, a config), describes the configs of
 * topic "test", alters one of them, deletes "made"; each waits at most 5 s
 * for its answer. Exit status 0 when every answer came.
 */
#include <stdio.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

/* Wait for the answer of one admin call. @return 0 when it came. */
static int wait_for(rd_kafka_queue_t *q, const char *what)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 5000);
    if (ev == NULL) {
        fprintf(stderr, "%s: no answer\n", what);
        return -1;
    }
    int rc = rd_kafka_event_error(ev) ? -1 : 0;
    if (rc != 0)
        fprintf(stderr, "%s: %s\n", what, rd_kafka_event_error_string(ev));
    rd_kafka_event_destroy(ev);
    return rc;
}

int main(int argc, char **argv)
{
    char err[512];
    int rc = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s HOST:PORT\n", argv[0]);
        return 2;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], err, sizeof err) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk == NULL) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);

    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new("made", 1, 1, err, sizeof err);
    rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rc |= wait_for(q, "CreateTopics");
    rd_kafka_NewTopic_destroy(nt);

    rd_kafka_ConfigResource_t *cr = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, "test");
    rd_kafka_DescribeConfigs(rk, &cr, 1, NULL, q);
    rc |= wait_for(q, "DescribeConfigs");
    rd_kafka_ConfigResource_destroy(cr);

    cr = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, "test");
    rd_kafka_ConfigResource_set_config(cr, "retention.ms", "86400000");
    rd_kafka_AlterConfigs(rk, &cr, 1, NULL, q);
    rc |= wait_for(q, "AlterConfigs");
    rd_kafka_ConfigResource_destroy(cr);

    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new("made");
    rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
    rc |= wait_for(q, "DeleteTopics");
    rd_kafka_DeleteTopic_destroy(dt);

    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc ? 1 : 0;
}
