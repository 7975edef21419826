/*
 * e2e/e2e_view.c - the latest-value view (RocksDB, DATA/view) lost or
 * damaged while krappyd is down, against a real krappyd:
 *
 * - deleted: krappyd refuses to start (the view held the groups' cursors)
 *   and says what to do; --rebuild-view starts it, the latest values
 *   rebuilt from the streams;
 * - a flipped byte in one of its table files: GET of a damaged key answers
 *   STORAGE and the log says, at error level, that the view is corrupt and
 *   how to rebuild it; --rebuild-view rebuilds it and the groups keep their
 *   cursors.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn.h"
#include "harness.h"

/* A hundred keys "k0".."k99" in topic "v", values "<tag>-<i>-" + 200 x 'n'
 * (long enough to find in a table file, and enough of them that the keys
 * fill several blocks of it, apart from the block of the markers). */
#define N_KEYS 100

static void produce(conn *x, const char *tag)
{
    assert_int_equal(conn_register(x, "v"), 0);
    static char text[N_KEYS][300];
    static uint8_t vals[N_KEYS][310];
    static char keys[N_KEYS][16];
    static kr_event_out_spec ev[N_KEYS];
    for (int i = 0; i < N_KEYS; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        int n = snprintf(text[i], sizeof text[i], "%s-%d-", tag, i);
        memset(text[i] + n, 'n', 200);
        text[i][n + 200] = '\0';
        kr_buf vb = {.data = vals[i], .cap = sizeof vals[i], .max = sizeof vals[i]};
        kr_cbor_put_cstr(&vb, text[i]);
        assert_false(vb.failed);
        ev[i] = (kr_event_out_spec){.key = keys[i],
                                    .key_len = strlen(keys[i]),
                                    .key_is_text = true,
                                    .value = vals[i],
                                    .value_len = vb.len};
    }
    kr_buf_reset(&x->b);
    kr_enc_publish(&x->b, (kr_cid){0}, KR_ACK_SYNC, ev, N_KEYS);
    assert_int_equal(conn_call(x, KRAPPY_T_PUBLISH), 0);
}

/* GET key: 0 with the value's text in out, or the error code. */
static int get(conn *x, const char *key, char *out, size_t outlen)
{
    kr_buf_reset(&x->b);
    kr_enc_get(&x->b, (kr_cid){0}, "v", key, strlen(key));
    int rc = conn_call(x, KRAPPY_T_GET);
    if (rc != 0)
        return rc;
    kr_cbor_item v;
    assert_int_equal(kr_cbor_map_find(&x->r.map, "value", &v), 1);
    size_t n = kr_cbor_str_copy(&v, (uint8_t *)out, outlen - 1);
    out[n] = '\0';
    return 0;
}

/* Group "g" of topic "v" is handed 10 events and acknowledges the first
 * 5: its cursor is 5. */
static void group_at_5(const e2e_server *s)
{
    conn c;
    conn_open(&c, s);
    kr_buf_reset(&c.b);
    kr_enc_consumer_register(&c.b, (kr_cid){0}, "v", "g", NULL, KR_START_EARLIEST, 0,
                             KR_CACK_EXPLICIT, 30000);
    assert_int_equal(conn_call(&c, KRAPPY_T_CONSUMER_REGISTER), 0);
    kr_buf_reset(&c.b);
    kr_enc_poll(&c.b, (kr_cid){0}, 10, 0, 1u << 20);
    assert_int_equal(conn_call(&c, KRAPPY_T_POLL), 0);
    kr_buf_reset(&c.b);
    kr_enc_ack_upto(&c.b, (kr_cid){0}, 5);
    assert_int_equal(conn_call(&c, KRAPPY_T_ACK), 0);
    assert_int_equal(reply_u(&c, "cursor"), 5);
    conn_close(&c);
}

/* STATS of group g: its cursor, or the error code negated. */
static long group_cursor(conn *x)
{
    kr_buf_reset(&x->b);
    kr_enc_stats(&x->b, (kr_cid){0}, "v", "g");
    int rc = conn_call(x, KRAPPY_T_STATS);
    if (rc != 0)
        return -rc;
    kr_cbor_item groups, g0, cur;
    assert_int_equal(kr_cbor_map_find(&x->r.map, "groups", &groups), 1);
    kr_cbor_iter it;
    kr_cbor_iter_init(&it, &groups);
    assert_int_equal(kr_cbor_iter_next(&it, &g0), 1);
    assert_int_equal(kr_cbor_map_find(&g0, "cursor", &cur), 1);
    return (long)cur.u;
}

/* A server with the values of `tags` (one PUBLISH each) in topic "v" and
 * group "g" at cursor 5, stopped (its view checkpointed), its directory
 * kept. */
static void prepare(e2e_server *s, const char *const *tags)
{
    assert_int_equal(e2e_start(s, NULL), 0);
    conn x;
    conn_open(&x, s);
    for (size_t i = 0; tags[i] != NULL; i++)
        produce(&x, tags[i]);
    conn_close(&x);
    group_at_5(s);
    assert_int_equal(e2e_stop_keep(s, 10000), 0);
}

static void test_deleted_view_refused_then_rebuilt(void **state)
{
    (void)state;
    e2e_server s;
    const char *tags[] = {"first", NULL};
    prepare(&s, tags);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/data/view'", s.dir);
    assert_int_equal(system(cmd), 0);
    /* It dropped every group without a word; now it refuses and says why. */
    assert_int_equal(e2e_restart(&s, NULL), -1);
    assert_true(e2e_logged(&s, "is missing, but"));
    assert_true(e2e_logged(&s, "--rebuild-view"));

    const char *rebuild[] = {"--rebuild-view", NULL};
    assert_int_equal(e2e_restart(&s, rebuild), 0);
    conn x;
    conn_open(&x, &s);
    char v[400];
    assert_int_equal(get(&x, "k3", v, sizeof v), 0);
    assert_int_equal(strncmp(v, "first-3-", 8), 0);
    assert_int_equal(group_cursor(&x), -KRAPPY_E_NOT_FOUND); /* as the refusal said */
    conn_close(&x);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

/* Flip one byte of `needle` in the first file of dir ending in .sst that
 * holds it. @return 1 when one was flipped. */
static int flip_in_sst(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int flipped = 0;
    size_t nl = strlen(needle);
    while (!flipped && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 4, ".sst") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int fd = open(path, O_RDWR);
        assert_true(fd >= 0);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        uint8_t *buf = malloc((size_t)st.st_size);
        assert_non_null(buf);
        assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
        uint8_t *at = memmem(buf, (size_t)st.st_size, needle, nl);
        if (at != NULL) {
            uint8_t b = at[nl + 10] ^ 0x01; /* inside the value's 'n's */
            assert_int_equal(pwrite(fd, &b, 1, (off_t)(at - buf) + (off_t)nl + 10), 1);
            flipped = 1;
        }
        free(buf);
        close(fd);
    }
    closedir(d);
    return flipped;
}

static void test_corrupt_view_logged_and_rebuilt(void **state)
{
    (void)state;
    e2e_server s;
    const char *tags[] = {"first", "second", NULL}; /* the view holds the second values */
    prepare(&s, tags);
    conn x;

    char view[400];
    snprintf(view, sizeof view, "%s/data/view", s.dir);
    assert_int_equal(flip_in_sst(view, "second-4-"), 1);

    assert_int_equal(e2e_restart(&s, NULL), 0);
    conn_open(&x, &s);
    char v[400];
    assert_int_equal(get(&x, "k4", v, sizeof v), KRAPPY_E_STORAGE);
    assert_non_null(strstr(krappy_client_errmsg(x.c), "Corruption"));
    conn_close(&x);
    /* It said nothing in the log; now an error line with the way back. */
    assert_true(e2e_logged(&s, "\"level\":\"error\",\"msg\":\"the latest-value view (RocksDB, "
                               "DATA/view) is corrupt"));
    assert_true(e2e_logged(&s, "--rebuild-view"));
    assert_int_equal(e2e_stop_keep(&s, 10000), 0);

    const char *rebuild[] = {"--rebuild-view", NULL};
    assert_int_equal(e2e_restart(&s, rebuild), 0);
    assert_true(e2e_logged(&s, "\"cursors_kept\":\"1\""));
    conn_open(&x, &s);
    for (int i = 0; i < N_KEYS; i++) {
        char key[16], want[32];
        snprintf(key, sizeof key, "k%d", i);
        snprintf(want, sizeof want, "second-%d-", i);
        assert_int_equal(get(&x, key, v, sizeof v), 0);
        assert_int_equal(strncmp(v, want, strlen(want)), 0);
    }
    assert_int_equal(group_cursor(&x), 5); /* kept */
    conn_close(&x);
    /* And the rebuilt view is the view from now on. */
    assert_int_equal(e2e_stop_keep(&s, 10000), 0);
    assert_int_equal(e2e_restart(&s, NULL), 0);
    conn_open(&x, &s);
    assert_int_equal(get(&x, "k4", v, sizeof v), 0);
    assert_int_equal(group_cursor(&x), 5);
    conn_close(&x);
    assert_int_equal(e2e_stop(&s, 10000), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (e2e_external_addr() != NULL) {
        printf("e2e_view: starts its own servers; skipped with KRAPPY_E2E_ADDR\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deleted_view_refused_then_rebuilt),
        cmocka_unit_test(test_corrupt_view_logged_and_rebuilt),
    };
    return cmocka_run_group_tests_name("e2e_view", tests, NULL, NULL);
}
