/*
 * tests/shim/rocks_powercut.c - RocksDB under libkrshim.so (test_shim.sh):
 *   rocks_powercut write DB TAG [DELAY_US]
 *                             3 x (PER puts with the WAL off, flush and wait),
 *                             then PER puts never waited for; with DELAY_US a
 *                             flush without waiting is started and the
 *                             process SIGKILLs itself DELAY_US later (a cut in
 *                             the middle of a flush), else at once
 *   rocks_powercut check DB TAG
 *                             reopen: every waited-for key of TAG must be
 *                             there with its value; prints how many of the
 *                             others survived; then writes + flushes +
 *                             reopens once more
 *   rocks_powercut faults DB  with KRAPPY_SHIM_FAULTS: ENOSPC on .sst writes
 *                             and EIO on fdatasync of .sst make flush fail;
 *                             after the rule is removed, close + reopen + flush
 *                             work and the data is there (RocksDB 7.8's C API
 *                             has no Resume: reopen is the recovery)
 * Exit 0 when everything checked out.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <rocksdb/c.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROUNDS 3
#define PER    2000

static rocksdb_t *open_db(const char *path, int create)
{
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, (unsigned char)create);
    char *err = NULL;
    rocksdb_t *db = rocksdb_open(o, path, &err);
    rocksdb_options_destroy(o);
    if (err) {
        printf("open: %s\n", err);
        free(err);
        return NULL;
    }
    return db;
}

static int put(rocksdb_t *db, const char *k, const char *v)
{
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(wo, 1);
    char *err = NULL;
    rocksdb_put(db, wo, k, strlen(k), v, strlen(v), &err);
    rocksdb_writeoptions_destroy(wo);
    if (err) {
        printf("put %s: %s\n", k, err);
        free(err);
        return -1;
    }
    return 0;
}

static int flush(rocksdb_t *db)
{
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    char *err = NULL;
    rocksdb_flush(db, fo, &err);
    rocksdb_flushoptions_destroy(fo);
    if (err) {
        printf("flush: %s\n", err);
        free(err);
        return -1;
    }
    return 0;
}

/* 1 = present with the value, 0 = absent, -1 = error or wrong value */
static int get(rocksdb_t *db, const char *k, const char *want)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    char *err = NULL;
    size_t n = 0;
    char *v = rocksdb_get(db, ro, k, strlen(k), &n, &err);
    rocksdb_readoptions_destroy(ro);
    if (err) {
        printf("get %s: %s\n", k, err);
        free(err);
        return -1;
    }
    if (!v)
        return 0;
    int ok = n == strlen(want) && !memcmp(v, want, n);
    if (!ok)
        printf("get %s: wrong value %.*s\n", k, (int)n, v);
    free(v);
    return ok ? 1 : -1;
}

static int cmd_write(const char *path, const char *tag, long delay)
{
    rocksdb_t *db = open_db(path, 1);
    if (!db)
        return 1;
    char k[64], v[64];
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < PER; i++) {
            snprintf(k, sizeof k, "%s-k%d-%04d", tag, r, i);
            snprintf(v, sizeof v, "value-%s-%d-%d", tag, r, i);
            if (put(db, k, v) < 0)
                return 1;
        }
        if (flush(db) < 0)
            return 1;
    }
    for (int i = 0; i < PER; i++) {
        snprintf(k, sizeof k, "%s-u-%04d", tag, i);
        if (put(db, k, "unflushed") < 0)
            return 1;
    }
    printf("written %d flushed + %d unflushed; killing%s\n", ROUNDS * PER, PER,
           delay >= 0 ? " during a flush" : "");
    fflush(stdout);
    if (delay >= 0) {
        rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
        rocksdb_flushoptions_set_wait(fo, 0);
        char *err = NULL;
        rocksdb_flush(db, fo, &err);
        free(err);
        usleep((useconds_t)delay);
    }
    kill(getpid(), SIGKILL);
    return 1;
}

static int cmd_check(const char *path, const char *tag)
{
    rocksdb_t *db = open_db(path, 0);
    if (!db)
        return 1;
    char k[64], v[64];
    int bad = 0, unflushed = 0;
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < PER; i++) {
            snprintf(k, sizeof k, "%s-k%d-%04d", tag, r, i);
            snprintf(v, sizeof v, "value-%s-%d-%d", tag, r, i);
            if (get(db, k, v) != 1)
                bad++;
        }
    for (int i = 0; i < PER; i++) {
        snprintf(k, sizeof k, "%s-u-%04d", tag, i);
        if (get(db, k, "unflushed") == 1)
            unflushed++;
    }
    printf("flushed keys missing or wrong: %d of %d; unflushed keys present: %d of %d\n", bad,
           ROUNDS * PER, unflushed, PER);
    /* still writable */
    if (put(db, "after", "cut") < 0 || flush(db) < 0)
        bad++;
    rocksdb_close(db);
    db = open_db(path, 0);
    if (!db || get(db, "after", "cut") != 1)
        bad++;
    if (db)
        rocksdb_close(db);
    return bad ? 1 : 0;
}

static int set_faults(const char *text)
{
    const char *f = getenv("KRAPPY_SHIM_FAULTS");
    if (!f)
        return -1;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", f);
    FILE *o = fopen(tmp, "w");
    if (!o)
        return -1;
    fputs(text, o);
    fclose(o);
    return rename(tmp, f);
}

/* One fault scenario: rule makes the flush fail; then recover by reopening. */
static int scenario(const char *path, const char *rule, int n)
{
    rocksdb_t *db = open_db(path, 1);
    if (!db)
        return 1;
    char k[64];
    int bad = 0;
    set_faults(rule);
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "f%d-%04d", n, i);
        if (put(db, k, "v") < 0)
            break;
    }
    int fr = flush(db);
    printf("with \"%.*s\": flush %s\n", (int)strcspn(rule, "\n"), rule,
           fr < 0 ? "failed (expected)" : "SUCCEEDED (unexpected)");
    if (fr == 0)
        bad++;
    /* The DB is now in background-error state: writes fail too. */
    int pr = put(db, "probe", "v");
    printf("put after the error: %s\n", pr < 0 ? "refused" : "accepted");
    set_faults("");
    rocksdb_close(db);
    db = open_db(path, 0);
    if (!db)
        return 1;
    /* The failed flush's memtable was never durable (WAL off): rewrite it. */
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "f%d-%04d", n, i);
        if (put(db, k, "v") < 0)
            bad++;
    }
    if (flush(db) < 0)
        bad++;
    rocksdb_close(db);
    db = open_db(path, 0);
    if (!db)
        return 1;
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "f%d-%04d", n, i);
        if (get(db, k, "v") != 1)
            bad++;
    }
    rocksdb_close(db);
    printf("after removing the rule and reopening: %s\n", bad ? "FAILED" : "recovered");
    return bad;
}

static int cmd_faults(const char *path)
{
    int bad = 0;
    bad += scenario(path, "write .sst ENOSPC\n", 1);
    bad += scenario(path, "sync .sst EIO\n", 2);
    bad += scenario(path, "sync MANIFEST EIO times=1\n", 3);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3 || (strcmp(argv[1], "faults") && argc < 4)) {
        fprintf(stderr,
                "usage: rocks_powercut write DB TAG [DELAY_US] | check DB TAG | faults DB\n");
        return 2;
    }
    if (!strcmp(argv[1], "write"))
        return cmd_write(argv[2], argv[3], argc > 4 ? atol(argv[4]) : -1);
    if (!strcmp(argv[1], "check"))
        return cmd_check(argv[2], argv[3]);
    if (!strcmp(argv[1], "faults"))
        return cmd_faults(argv[2]);
    return 2;
}
