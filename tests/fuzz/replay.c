/*
 * tests/fuzz/replay.c - run a fuzz target over saved inputs, without
 * libFuzzer: the corpus replay of `make test` (SQLite's fuzzcheck idea).
 *
 *   fuzz_msg FILE|DIR...
 *
 * Each file is read whole and handed to LLVMFuzzerTestOneInput once; a
 * directory means every regular file in it. A crash or sanitizer report
 * fails the run; otherwise one line per argument says how many inputs
 * passed. Not linked into the libFuzzer builds, which bring their own main.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input being run, named when it crashes the target. */
static const char *current;

/* A failed FUZZ_CHECK traps (SIGILL), a sanitizer report aborts: say which
 * input did it (only async-signal-safe calls), then die of the signal. */
static void on_crash(int sig)
{
    static const char what[] = "fuzz replay: the target crashed on ";
    if (current != NULL) {
        (void)!write(2, what, sizeof what - 1);
        (void)!write(2, current, strlen(current));
        (void)!write(2, "\n", 1);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Read a whole file and run it. @return 0, or -1 when it cannot be read. */
static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;

    if (f == NULL) {
        fprintf(stderr, "fuzz replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 4096;
            uint8_t *p = realloc(buf, ncap);
            if (p == NULL)
                goto fail;
            buf = p;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f))
        goto fail;
    /* An exact-size copy, so reads past the end are caught by ASan. */
    uint8_t *exact = malloc(len ? len : 1);
    if (exact == NULL)
        goto fail;
    if (len > 0)
        memcpy(exact, buf, len);
    current = path;
    LLVMFuzzerTestOneInput(exact, len);
    current = NULL;
    free(exact);
    rc = 0;
fail:
    if (rc != 0)
        fprintf(stderr, "fuzz replay: cannot read %s\n", path);
    free(buf);
    fclose(f);
    return rc;
}

/* Run every regular file of a directory (not recursive). */
static int run_dir(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = 0;

    if (d == NULL) {
        fprintf(stderr, "fuzz replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (run_file(path) != 0)
            rc = -1;
        else
            (*count)++;
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    static const int fatal[] = {SIGILL, SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGTRAP};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        signal(fatal[i], on_crash);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        size_t n = 0;
        int bad = 0;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "fuzz replay: %s: %s\n", argv[i], strerror(errno));
            rc = 1;
            continue;
        }
        if (S_ISDIR(st.st_mode))
            bad = run_dir(argv[i], &n) != 0;
        else if (run_file(argv[i]) == 0)
            n = 1;
        else
            bad = 1;
        if (bad)
            rc = 1;
        printf("fuzz replay: %zu inputs from %s %s\n", n, argv[i], bad ? "FAILED" : "ok");
    }
    return rc;
}
