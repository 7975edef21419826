/*
 * e2e/bench/bench_groups.c - group consume + ack throughput: one member
 * POLLs batches of 1000 and ACKs each batch, with the ACK of one batch and
 * the POLL of the next pipelined, until it has consumed EVENTS events that
 * were produced beforehand (16-byte keys, 100-byte values). Every event is
 * decoded and its offset checked.
 *
 *   bench_groups [EVENTS]        default 1000000
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../harness.h"
#include "krappy/client.h"
#include "proto/msg.h"

#define BATCH 1000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(krappy_client *c, const char *what)
{
    fprintf(stderr, "bench_groups: %s: %s\n", what, krappy_client_errmsg(c));
    exit(1);
}

static void produce(krappy_client *c, long events)
{
    kr_buf b;
    kr_buf_init(&b, 64u << 20);
    kr_enc_producer_register(&b, (kr_cid){0}, "gb", "bench");
    krappy_frame f;
    if (krappy_call(c, KRAPPY_T_PRODUCER_REGISTER, b.data, b.len, &f) != KRAPPY_OK)
        die(c, "register");
    static char keys[BATCH][17];
    static uint8_t value[100];
    static kr_event_out_spec ev[BATCH];
    value[0] = 0x78;
    value[1] = 98;
    memset(value + 2, 'v', 98);
    long sent = 0, got = 0, batches = events / BATCH;
    while (got < batches) {
        while (sent < batches && sent - got < 8) {
            for (int i = 0; i < BATCH; i++) {
                snprintf(keys[i], sizeof keys[i], "key-%011ld", (sent * BATCH + i) % 100000);
                ev[i] = (kr_event_out_spec){.key = keys[i],
                                            .key_len = 16,
                                            .key_is_text = true,
                                            .value = value,
                                            .value_len = sizeof value};
            }
            kr_buf_reset(&b);
            kr_enc_publish(&b, (kr_cid){0}, KR_ACK_WRITE, ev, BATCH);
            if (krappy_send(c, KRAPPY_T_PUBLISH, b.data, b.len) != KRAPPY_OK)
                die(c, "publish");
            sent++;
        }
        if (krappy_recv(c, &f) != KRAPPY_OK || krappy_reply_error(c, &f) != KRAPPY_OK)
            die(c, "publish reply");
        got++;
    }
    kr_buf_free(&b);
}

int main(int argc, char **argv)
{
    long events = argc > 1 ? atol(argv[1]) : 1000000;
    if (events < BATCH) {
        fprintf(stderr, "usage: bench_groups [EVENTS >= 1000]\n");
        return 2;
    }
    events -= events % BATCH;
    e2e_server s;
    if (e2e_start_or_external(&s) < 0)
        return 1;
    krappy_client *c = krappy_client_new(NULL);
    if (c == NULL || krappy_connect(c, s.host, s.port) != KRAPPY_OK ||
        krappy_hello(c, NULL) != KRAPPY_OK)
        die(c, "connect");
    produce(c, events);

    kr_buf b;
    kr_buf_init(&b, 1 << 20);
    kr_enc_consumer_register(&b, (kr_cid){0}, "gb", "g", "m", KR_START_EARLIEST, 0,
                             KR_CACK_EXPLICIT, 30000);
    krappy_frame f;
    if (krappy_call(c, KRAPPY_T_CONSUMER_REGISTER, b.data, b.len, &f) != KRAPPY_OK)
        die(c, "consumer register");

    double t0 = now_s();
    uint64_t consumed = 0, expect = 0;
    /* Keep one POLL ahead: POLL n+1 and ACK n travel together. */
    kr_buf_reset(&b);
    kr_enc_poll(&b, (kr_cid){0}, BATCH, 0, 16u << 20);
    if (krappy_send(c, KRAPPY_T_POLL, b.data, b.len) != KRAPPY_OK)
        die(c, "poll");
    while (consumed < (uint64_t)events) {
        if (krappy_recv(c, &f) != KRAPPY_OK || f.type != KRAPPY_T_EVENTS)
            die(c, "poll reply");
        long n = e2e_events_in_order(f.type, f.payload, f.len, &expect, NULL);
        if (n < 0)
            die(c, "events out of order");
        consumed += (uint64_t)n;
        kr_buf_reset(&b);
        kr_enc_ack_upto(&b, (kr_cid){0}, expect);
        if (krappy_send(c, KRAPPY_T_ACK, b.data, b.len) != KRAPPY_OK)
            die(c, "ack");
        if (consumed < (uint64_t)events) {
            kr_buf_reset(&b);
            kr_enc_poll(&b, (kr_cid){0}, BATCH, 0, 16u << 20);
            if (krappy_send(c, KRAPPY_T_POLL, b.data, b.len) != KRAPPY_OK)
                die(c, "poll");
        }
        if (krappy_recv(c, &f) != KRAPPY_OK || krappy_reply_error(c, &f) != KRAPPY_OK)
            die(c, "ack reply");
    }
    double secs = now_s() - t0;
    printf("| group consume + ack, 1 member, POLL %d / ACK upto pipelined | events/s |\n"
           "|---|---|\n| %ld events | %.0f |\n",
           BATCH, events, (double)consumed / secs);
    kr_buf_free(&b);
    krappy_client_free(c);
    return e2e_stop(&s, 20000) == 0 ? 0 : 1;
}
