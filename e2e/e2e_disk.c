/*
 * e2e/e2e_disk.c - a full disk, made to happen: krappyd on a tiny ext4
 * filesystem of its own (a loop-mounted image), filled by producers until
 * writes fail (issue 12, "A full disk loses no readable data").
 *
 * What must hold, during the full disk and after space is freed, without a
 * restart: every acknowledged event stays readable (FETCH from 0 returns
 * them all, the newest included, never only an error); GET and SCAN
 * answer (SCAN with no checkpoint possible); a failed PUBLISH takes no
 * offset; once space is back, PUBLISH and ACK work again; the server stops
 * cleanly (under ASan: no leak). The disk also fills exactly as a segment
 * rolls (small segments, batches a third of one, until a roll failure has
 * been seen).
 *
 * Needs root (mount), a loop device and mkfs.ext4; otherwise every test
 * skips with a message. Environment: KRAPPYD (the server under test).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "krappy/client.h"

/* A krappyd whose data directory is a filesystem of its own. */
typedef struct disk {
    e2e_server s;
    char mnt[300]; /* s.dir/data, the mount point */
    bool mounted;
} disk;

static bool can_mount(void)
{
    char out[64];
    return geteuid() == 0 && access("/dev/loop-control", F_OK) == 0 &&
           e2e_run("command -v mkfs.ext4 && command -v mount", out, sizeof out) == 0;
}

static void skip_unless_mountable(void)
{
    if (!can_mount()) {
        print_message("      skipped: needs root, a loop device and mkfs.ext4 to mount a small "
                      "filesystem\n");
        skip();
    }
}

/* The disk of the test running (its teardown cleans up after a failure). */
static disk *current;

/* Make a `kib` KiB ext4 image, mount it as the server's data directory,
 * start krappyd on it with `args`. */
static void disk_up(disk *d, int kib, const char *const *args)
{
    memset(d, 0, sizeof *d);
    e2e_tmp_template(d->s.dir, sizeof d->s.dir);
    assert_non_null(mkdtemp(d->s.dir));
    snprintf(d->mnt, sizeof d->mnt, "%s/data", d->s.dir);
    char cmd[1200], out[512];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && truncate -s %dK img && mkfs.ext4 -q -F img && mkdir data && "
             "mount -o loop img data",
             d->s.dir, kib);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
    d->mounted = true;
    current = d;
    assert_int_equal(e2e_restart(&d->s, args), 0);
}

/* Take all but `room` KiB of what is left on the disk with a file the test
 * frees later (after the server wrote a first cursor: RocksDB preallocates
 * its log then). */
static void take_space(disk *d, int room)
{
    char cmd[1200], out[512];
    struct statvfs vfs;
    assert_int_equal(statvfs(d->mnt, &vfs), 0);
    long long avail = (long long)vfs.f_bavail * (long long)vfs.f_frsize / 1024;
    assert_true(avail > room);
    snprintf(cmd, sizeof cmd, "fallocate -l %lldK '%s/ballast' && sync", avail - room, d->mnt);
    assert_int_equal(e2e_run(cmd, out, sizeof out), 0);
}

static void free_ballast(disk *d)
{
    char path[320];
    snprintf(path, sizeof path, "%s/ballast", d->mnt);
    assert_int_equal(unlink(path), 0);
}

/* Unmount and remove everything (the server has stopped). */
static void disk_remove(disk *d)
{
    char cmd[700], out[256];
    snprintf(cmd, sizeof cmd, "umount '%s'", d->mnt);
    if (d->mounted && e2e_run(cmd, out, sizeof out) == 0)
        d->mounted = false;
    if (!d->mounted)
        e2e_rm_tmp(d->s.dir);
    current = NULL;
}

/* Stop the server (it must stop cleanly: under ASan, without a leak), then
 * remove the disk. */
static void disk_down(disk *d)
{
    int status = e2e_stop_keep(&d->s, 30000);
    disk_remove(d);
    assert_int_equal(status, 0);
}

/* After a failed test: kill what runs and remove the disk. */
static int teardown(void **state)
{
    (void)state;
    if (current != NULL) {
        if (current->s.pid > 0)
            (void)e2e_stop_keep(&current->s, 5000);
        disk_remove(current);
    }
    return 0;
}

static krappy_client *dial(const disk *d)
{
    krappy_client *c = krappy_client_new(NULL);
    assert_non_null(c);
    assert_int_equal(krappy_connect(c, d->s.host, d->s.port), KRAPPY_OK);
    return c;
}

/* Event n's key and value: keys repeat every 50, values carry n. */
static void key_of(uint64_t n, char *key, size_t len)
{
    snprintf(key, len, "k%llu", (unsigned long long)(n % 50));
}

static size_t value_of(uint64_t n, size_t size, char *val)
{
    memset(val, 'v', size);
    int k = snprintf(val, size, "%llu:", (unsigned long long)n);
    val[k] = 'v';
    return size;
}

/*
 * Publish batches of `batch` events of `size`-byte values (every other
 * batch ack "sync") until `stop_after` PUBLISHes in a row fail with
 * STORAGE, or `most` batches were acknowledged. Every acknowledged batch
 * must start where the last one ended (a failure takes no offset).
 * @return the offset after the last acknowledged event; *roll_failed when
 *         a failure was a segment roll's.
 */
static uint64_t publish_until(krappy_client *c, uint64_t next, int batch, size_t size,
                              int stop_after, int most, bool *roll_failed)
{
    krappy_batch *b = krappy_batch_new();
    assert_non_null(b);
    char key[16], val[4096];
    int failed = 0, ok = 0;
    for (int i = 0; failed < stop_after && ok < most && i < 100000; i++) {
        krappy_batch_reset(b);
        for (int k = 0; k < batch; k++) {
            key_of(next + (uint64_t)k, key, sizeof key);
            size_t n = value_of(next + (uint64_t)k, size, val);
            assert_int_equal(krappy_batch_add_bytes(b, KRAPPY_KEY_TEXT, key, strlen(key), val, n),
                             KRAPPY_OK);
        }
        krappy_publish_result r;
        krappy_err e = krappy_publish(c, b, i % 2 ? KRAPPY_ACK_SYNC : KRAPPY_ACK_WRITE, &r);
        if (e == KRAPPY_E_STORAGE) {
            if (failed++ == 0 && getenv("KRAPPY_E2E_VERBOSE") != NULL)
                print_message("      PUBLISH at %llu: %s\n", (unsigned long long)next,
                              krappy_client_errmsg(c));
            if (roll_failed != NULL && strstr(krappy_client_errmsg(c), "new segment") != NULL)
                *roll_failed = true;
            continue;
        }
        if (e != KRAPPY_OK)
            fail_msg("PUBLISH: %s", krappy_client_errmsg(c));
        assert_int_equal(r.first, next);
        assert_int_equal(r.count, (uint64_t)batch);
        next += (uint64_t)batch;
        failed = 0;
        ok++;
    }
    krappy_batch_free(b);
    return next;
}

/* Publish until the disk is full (5 failures in a row). */
static uint64_t fill(krappy_client *c, uint64_t next, int batch, size_t size, bool *roll_failed)
{
    return publish_until(c, next, batch, size, 5, 1000000, roll_failed);
}

/* FETCH from 0: every event below `next` is there, in order, with its
 * value; the topic's next is `next`. */
static void check_all(krappy_client *c, const char *topic, uint64_t next, size_t size)
{
    uint64_t off = 0;
    char want[4096];
    while (off < next) {
        krappy_events *ev;
        krappy_err e = krappy_fetch(c, topic, off, 1000, 0, 0, &ev);
        if (e != KRAPPY_OK)
            fail_msg("FETCH from %llu of %llu acknowledged: %s", (unsigned long long)off,
                     (unsigned long long)next, krappy_client_errmsg(c));
        assert_true(ev->count > 0);
        for (size_t i = 0; i < ev->count; i++) {
            const krappy_event *x = &ev->events[i];
            assert_int_equal(x->offset, off);
            value_of(off, size, want);
            /* a CBOR byte string: a 2- or 3-byte head, then the value */
            assert_true(x->value_len > size);
            assert_memory_equal(x->value + (x->value_len - size), want, size);
            off++;
        }
        krappy_events_free(ev);
    }
    krappy_events *ev;
    assert_int_equal(krappy_fetch(c, topic, next, 10, 0, 0, &ev), KRAPPY_OK);
    assert_int_equal(ev->count, 0); /* nothing more, nothing less */
    krappy_events_free(ev);
}

/* SCAN the whole topic: it answers, with `want` live keys. */
static void check_scan(krappy_client *c, const char *topic, size_t want)
{
    krappy_scan *sc = NULL;
    krappy_err e = krappy_scan_begin(c, topic, NULL, 0, NULL, 0, 0, &sc);
    if (e != KRAPPY_OK)
        fail_msg("SCAN: %s", krappy_client_errmsg(c));
    size_t total = 0;
    for (;;) {
        size_t n;
        (void)krappy_scan_entries(sc, &n);
        total += n;
        if (!krappy_scan_more(sc))
            break;
        assert_int_equal(krappy_scan_next_page(c, sc), KRAPPY_OK);
    }
    krappy_scan_free(sc);
    assert_int_equal(total, want);
}

/* The newest value of key "k<n % 50>" is event n's. */
static void check_get(krappy_client *c, const char *topic, uint64_t n, size_t size)
{
    char key[16], want[4096];
    key_of(n, key, sizeof key);
    value_of(n, size, want);
    krappy_value *v;
    if (krappy_get(c, topic, key, strlen(key), &v) != KRAPPY_OK)
        fail_msg("GET %s: %s", key, krappy_client_errmsg(c));
    assert_int_equal(v->offset, n);
    assert_memory_equal(v->value + (v->value_len - size), want, size);
    krappy_value_free(v);
}

static void test_full_disk(void **state)
{
    (void)state;
    skip_unless_mountable();
    const char *args[] = {"--segment-bytes", "64K", "--checkpoint-interval", "60s", NULL};
    static disk d; /* the teardown's after a failure */
    disk_up(&d, 32768, args);
    enum { SIZE = 200, BATCH = 10 };
    krappy_client *p = dial(&d), *r = dial(&d), *g = dial(&d);
    assert_int_equal(krappy_register_producer(p, "fd", "p", NULL), KRAPPY_OK);
    krappy_consumer_opts o = {.start = KRAPPY_START_EARLIEST, .member = "m"};
    assert_int_equal(krappy_register_consumer(g, "fd", "g", &o, NULL), KRAPPY_OK);
    take_space(&d, 1024);

    uint64_t next = fill(p, 0, BATCH, SIZE, NULL);
    print_message("      the disk filled after %llu events\n", (unsigned long long)next);
    assert_true(next > 1000);

    /* During the full disk: everything acknowledged reads back. */
    check_all(r, "fd", next, SIZE);
    check_get(r, "fd", next - 1, SIZE);
    check_scan(r, "fd", 50);
    krappy_events *ev;
    assert_int_equal(krappy_poll(g, 100, 0, 0, &ev), KRAPPY_OK);
    uint64_t upto = ev->next;
    krappy_events_free(ev);
    krappy_err acked = krappy_ack_upto(g, upto, NULL); /* may fail: RocksDB is full too */
    print_message("      ACK during the full disk: %s\n",
                  acked == KRAPPY_OK ? "ok" : krappy_client_errmsg(g));
    /* More failing publishes change nothing. */
    assert_int_equal(publish_until(p, next, BATCH, SIZE, 3, 1000000, NULL), next);
    check_all(r, "fd", next, SIZE);

    /* Space is back: everything works again, without a restart. */
    free_ballast(&d);
    uint64_t more = publish_until(p, next, BATCH, SIZE, 1, 50, NULL);
    assert_int_equal(more, next + 50 * BATCH);
    check_all(r, "fd", more, SIZE);
    check_get(r, "fd", more - 1, SIZE);
    check_scan(r, "fd", 50);
    assert_int_equal(krappy_poll(g, 100, 0, 0, &ev), KRAPPY_OK);
    upto = ev->next;
    krappy_events_free(ev);
    uint64_t cursor = 0;
    if (krappy_ack_upto(g, upto, &cursor) != KRAPPY_OK)
        fail_msg("ACK once space is back: %s", krappy_client_errmsg(g));
    assert_int_equal(cursor, upto);
    krappy_client_free(p);
    krappy_client_free(r);
    krappy_client_free(g);

    /* And after a restart. */
    assert_int_equal(e2e_stop_keep(&d.s, 30000), 0);
    assert_int_equal(e2e_restart(&d.s, args), 0);
    r = dial(&d);
    check_all(r, "fd", more, SIZE);
    krappy_client_free(r);
    disk_down(&d);
}

/*
 * The disk fills exactly as a segment rolls: segments of 4 KiB, batches of
 * about a third of one, so that the new segment's header is as likely as a
 * batch to be the write that finds no room. Filled again on fresh disks,
 * with other batch sizes, until a roll has failed; each time every
 * acknowledged event reads back, during the full disk and after space is
 * freed, and FETCH from 0 returns them.
 */
static void test_full_disk_at_roll(void **state)
{
    (void)state;
    skip_unless_mountable();
    const char *args[] = {"--segment-bytes", "4K", "--checkpoint-interval", "60s", NULL};
    static disk d;
    bool roll_failed = false;
    int tries = 0;
    for (size_t size = 250; !roll_failed && tries < 12; size += 37, tries++) {
        disk_up(&d, 32768, args);
        krappy_client *p = dial(&d), *r = dial(&d);
        assert_int_equal(krappy_register_producer(p, "rl", "p", NULL), KRAPPY_OK);
        krappy_consumer_opts o = {.start = KRAPPY_START_EARLIEST, .member = "m"};
        assert_int_equal(krappy_register_consumer(r, "rl", "g", &o, NULL), KRAPPY_OK);
        take_space(&d, 192);
        uint64_t next = publish_until(p, 0, 4, size, 6, 1000000, &roll_failed);
        check_all(r, "rl", next, size);
        free_ballast(&d);
        uint64_t more = publish_until(p, next, 4, size, 1, 20, NULL);
        assert_int_equal(more, next + 80);
        check_all(r, "rl", more, size);
        krappy_client_free(p);
        krappy_client_free(r);
        disk_down(&d);
    }
    print_message("      a roll failed on a full disk after %d fills\n", tries);
    assert_true(roll_failed);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (e2e_external_addr() != NULL) {
        printf("e2e_disk: needs its own servers; skipped with KRAPPY_E2E_ADDR\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_full_disk, teardown),
        cmocka_unit_test_teardown(test_full_disk_at_roll, teardown),
    };
    return cmocka_run_group_tests_name("e2e_disk", tests, NULL, NULL);
}
