/*
 * tests/shim/powercut.c - apply a simulated power cut to a directory tree,
 * from the durability log written by libkrshim.so (see krshim.c).
 *
 *   powercut [-n] [-s] LOG ROOT
 *     -n  dry run: print what would change, change nothing, no marker
 *     -s  strict POSIX directory model (see below)
 *
 * Use it after the process under the shim was killed with SIGKILL (all its
 * writes are then in the page cache; this drops the ones that were not made
 * durable). One line per change goes to stdout; a summary to stderr; exit 0
 * (2 on a usage or I/O error). At the end it appends a `powercut` record to
 * LOG: the next run may keep appending to the same LOG, and the next
 * powercut only looks at records after the last marker (every file is then
 * "pre-existing" again, at the length it has now).
 *
 * THE MODEL (records are replayed in log order; files are keyed by inode,
 * so a synced temp file keeps its synced length through rename):
 *   durable length D of an inode
 *     create            D = 0, and the inode is "created in this run"
 *     open <size>       D = size if D unknown, else D = min(D, size)
 *                       (first writable open of a pre-existing file: what it
 *                       held then is taken as durable)
 *     sync <len>        D = len (fsync/fdatasync; sync_file_range never is)
 *     truncate <len>    D = min(D, len) (truncation durable at once)
 *     syncfail <len>    bytes [D, len) are LOST: zeroed at the power cut
 *                       unless a later truncate cut them away (Linux drops
 *                       the dirty pages' error state after a failed fsync;
 *                       a later fsync returns 0 but never writes them)
 *   for every regular file under ROOT (walked after the log is read):
 *     - no record for its inode: untouched, kept as it is
 *     - created in this run, never synced: deleted when its directory was
 *       not fsynced (dirsync) after it got its name (create, rename into
 *       it, link), else truncated to 0
 *     - otherwise truncated to D if longer; lost ranges below the new
 *       length are overwritten with zeros
 *   -s (strict): a created file vanishes when its directory was not
 *     dirsynced after it got its name even if the file itself was synced
 *     (POSIX; ext4 and xfs in practice persist the name with the file's
 *     fsync, which is the default model); a directory made by mkdir in
 *     this run vanishes with everything in it when its parent was not
 *     dirsynced after the mkdir.
 * NOT MODELLED: overwrites inside the durable prefix (pwrite below D) are
 *   kept, not undone; unlinks and renames are durable at once (an unlinked
 *   file never comes back; a rename is never reverted - -s only notes it);
 *   writes through mmap; renameat2 RENAME_EXCHANGE; several filesystems
 *   under ROOT (inode numbers are assumed unique).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a small chained hash map, string or integer keys ---- */

struct node {
    char *key; /* NULL for integer keys */
    uint64_t ikey;
    void *val;
    struct node *next;
};

struct map {
    struct node **b;
    size_t nb, n;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static uint64_t hash_int(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static void *xcalloc(size_t n, size_t s)
{
    void *p = calloc(n, s);
    if (!p) {
        perror("powercut");
        exit(2);
    }
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p) {
        perror("powercut");
        exit(2);
    }
    return p;
}

static void map_grow(struct map *m)
{
    size_t nb = m->nb ? m->nb * 2 : 256;
    struct node **b = xcalloc(nb, sizeof *b);
    for (size_t i = 0; i < m->nb; i++) {
        struct node *n = m->b[i], *next;
        for (; n; n = next) {
            next = n->next;
            uint64_t h = n->key ? hash_str(n->key) : hash_int(n->ikey);
            n->next = b[h % nb];
            b[h % nb] = n;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

static struct node **map_slot(struct map *m, const char *key, uint64_t ikey)
{
    if (!m->nb)
        map_grow(m);
    uint64_t h = key ? hash_str(key) : hash_int(ikey);
    struct node **pp = &m->b[h % m->nb];
    for (; *pp; pp = &(*pp)->next)
        if (key ? ((*pp)->key && !strcmp((*pp)->key, key)) : (!(*pp)->key && (*pp)->ikey == ikey))
            break;
    return pp;
}

static void *map_get(struct map *m, const char *key, uint64_t ikey)
{
    struct node **pp = map_slot(m, key, ikey);
    return *pp ? (*pp)->val : NULL;
}

static void map_put(struct map *m, const char *key, uint64_t ikey, void *val)
{
    if (m->n + 1 > m->nb)
        map_grow(m);
    struct node **pp = map_slot(m, key, ikey);
    if (*pp) {
        (*pp)->val = val;
        return;
    }
    struct node *n = xcalloc(1, sizeof *n);
    n->key = key ? xstrdup(key) : NULL;
    n->ikey = ikey;
    n->val = val;
    *pp = n;
    m->n++;
}

/* Removes and returns the value. */
static void *map_del(struct map *m, const char *key, uint64_t ikey)
{
    if (!m->nb)
        return NULL;
    struct node **pp = map_slot(m, key, ikey);
    if (!*pp)
        return NULL;
    struct node *n = *pp;
    void *v = n->val;
    *pp = n->next;
    free(n->key);
    free(n);
    m->n--;
    return v;
}

static void map_clear(struct map *m, void (*freeval)(void *))
{
    for (size_t i = 0; i < m->nb; i++) {
        struct node *n = m->b[i], *next;
        for (; n; n = next) {
            next = n->next;
            if (freeval)
                freeval(n->val);
            free(n->key);
            free(n);
        }
    }
    free(m->b);
    memset(m, 0, sizeof *m);
}

/* ---- state ---- */

struct range {
    uint64_t a, b;
};

struct inode {
    uint64_t ino;
    int has_d, created, synced;
    uint64_t d;
    long cseq;
    struct range *lost;
    size_t nlost, caplost;
};

struct pent { /* a name we saw being made or used */
    uint64_t ino;
    int has_ino, created, isdir, renamed;
    long seq; /* when it got this name (0: before the run) */
};

static struct map g_inodes;  /* ino -> struct inode */
static struct map g_paths;   /* path -> struct pent */
static struct map g_dirsync; /* path -> (long)seq, boxed */

static void free_inode(void *p)
{
    struct inode *i = p;
    if (i)
        free(i->lost);
    free(i);
}

static void reset_state(void)
{
    map_clear(&g_inodes, free_inode);
    map_clear(&g_paths, free);
    map_clear(&g_dirsync, free);
}

static struct inode *inode_get(uint64_t ino, int make)
{
    struct inode *i = map_get(&g_inodes, NULL, ino);
    if (!i && make) {
        i = xcalloc(1, sizeof *i);
        i->ino = ino;
        map_put(&g_inodes, NULL, ino, i);
    }
    return i;
}

static struct pent *pent_set(const char *path, uint64_t ino, int has_ino, long seq, int created,
                             int isdir)
{
    struct pent *p = map_get(&g_paths, path, 0);
    if (!p) {
        p = xcalloc(1, sizeof *p);
        map_put(&g_paths, path, 0, p);
    }
    p->ino = ino;
    p->has_ino = has_ino;
    p->seq = seq;
    p->created = created;
    p->isdir = isdir;
    p->renamed = 0;
    return p;
}

static long dirsync_seq(const char *dir)
{
    long *v = map_get(&g_dirsync, dir, 0);
    return v ? *v : -1;
}

static void clip_lost(struct inode *i, uint64_t len)
{
    size_t o = 0;
    for (size_t k = 0; k < i->nlost; k++) {
        if (i->lost[k].a >= len)
            continue;
        if (i->lost[k].b > len)
            i->lost[k].b = len;
        i->lost[o++] = i->lost[k];
    }
    i->nlost = o;
}

static void add_lost(struct inode *i, uint64_t a, uint64_t b)
{
    if (i->nlost == i->caplost) {
        i->caplost = i->caplost ? i->caplost * 2 : 4;
        i->lost = realloc(i->lost, i->caplost * sizeof *i->lost);
        if (!i->lost) {
            perror("powercut");
            exit(2);
        }
    }
    i->lost[i->nlost].a = a;
    i->lost[i->nlost].b = b;
    i->nlost++;
}

/* Move every key equal to `from` or under `from/` to `to` (directory renames). */
static void move_prefix(struct map *m, const char *from, const char *to)
{
    size_t fl = strlen(from);
    size_t cap = 16, n = 0;
    char **keys = xcalloc(cap, sizeof *keys);
    for (size_t b = 0; b < m->nb; b++)
        for (struct node *x = m->b[b]; x; x = x->next)
            if (x->key && !strncmp(x->key, from, fl) && (x->key[fl] == '/' || x->key[fl] == 0)) {
                if (n == cap) {
                    cap *= 2;
                    keys = realloc(keys, cap * sizeof *keys);
                    if (!keys) {
                        perror("powercut");
                        exit(2);
                    }
                }
                keys[n++] = xstrdup(x->key);
            }
    for (size_t k = 0; k < n; k++) {
        void *v = map_del(m, keys[k], 0);
        char nk[PATH_MAX * 2];
        snprintf(nk, sizeof nk, "%s%s", to, keys[k] + fl);
        void *old = map_del(m, nk, 0);
        free(old);
        map_put(m, nk, 0, v);
        free(keys[k]);
    }
    free(keys);
}

static void unescape(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (s[0] == '%' && s[1] && s[2]) {
            char h[3] = {s[1], s[2], 0};
            *o++ = (char)strtol(h, NULL, 16);
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = 0;
}

static void dirname_of(const char *p, char *out)
{
    snprintf(out, PATH_MAX, "%s", p);
    char *s = strrchr(out, '/');
    if (!s)
        strcpy(out, ".");
    else if (s == out)
        out[1] = 0;
    else
        *s = 0;
}

/* ---- the log ---- */

static long g_records, g_syncs;

static void apply_record(char **t, int n, long seq)
{
    const char *r = t[0];
    if (!strcmp(r, "powercut")) {
        reset_state();
        g_records = g_syncs = 0;
        return;
    }
    g_records++;
    if (!strcmp(r, "create") && n >= 3) {
        uint64_t ino = strtoull(t[1], NULL, 10);
        struct inode *i = inode_get(ino, 1);
        i->has_d = 1;
        i->d = 0;
        i->created = 1;
        i->synced = 0;
        i->cseq = seq;
        i->nlost = 0;
        pent_set(t[2], ino, 1, seq, 1, 0);
    } else if (!strcmp(r, "mkdir") && n >= 3) {
        pent_set(t[2], strtoull(t[1], NULL, 10), 1, seq, 1, 1);
    } else if (!strcmp(r, "open") && n >= 4) {
        uint64_t ino = strtoull(t[1], NULL, 10), size = strtoull(t[2], NULL, 10);
        struct inode *i = inode_get(ino, 1);
        if (!i->has_d) {
            i->has_d = 1;
            i->d = size;
        } else if (size < i->d) {
            i->d = size;
        }
        if (!map_get(&g_paths, t[3], 0))
            pent_set(t[3], ino, 1, 0, 0, 0);
    } else if (!strcmp(r, "sync") && n >= 4) {
        struct inode *i = inode_get(strtoull(t[1], NULL, 10), 1);
        i->has_d = 1;
        i->d = strtoull(t[2], NULL, 10);
        i->synced = 1;
        g_syncs++;
    } else if (!strcmp(r, "truncate") && n >= 4) {
        struct inode *i = inode_get(strtoull(t[1], NULL, 10), 1);
        uint64_t len = strtoull(t[2], NULL, 10);
        if (!i->has_d || len < i->d)
            i->d = len;
        i->has_d = 1;
        clip_lost(i, len);
    } else if (!strcmp(r, "syncfail") && n >= 4) {
        struct inode *i = inode_get(strtoull(t[1], NULL, 10), 0);
        uint64_t len = strtoull(t[2], NULL, 10);
        if (i && i->has_d && len > i->d)
            add_lost(i, i->d, len);
    } else if (!strcmp(r, "rename") && n >= 3) {
        const char *from = t[1], *to = t[2];
        struct pent *old = map_del(&g_paths, from, 0);
        free(map_del(&g_paths, to, 0));
        move_prefix(&g_paths, from, to);
        move_prefix(&g_dirsync, from, to);
        struct pent *p = pent_set(to, old ? old->ino : 0, old ? old->has_ino : 0, seq,
                                  old ? old->created : 0, old ? old->isdir : 0);
        p->renamed = 1;
        free(old);
    } else if (!strcmp(r, "link") && n >= 3) {
        struct pent *old = map_get(&g_paths, t[1], 0);
        pent_set(t[2], old ? old->ino : 0, old ? old->has_ino : 0, seq, 1, 0);
    } else if ((!strcmp(r, "unlink") || !strcmp(r, "rmdir")) && n >= 2) {
        free(map_del(&g_paths, t[1], 0));
        if (!strcmp(r, "rmdir")) {
            free(map_del(&g_dirsync, t[1], 0));
        }
    } else if (!strcmp(r, "dirsync") && n >= 2) {
        long *v = map_get(&g_dirsync, t[1], 0);
        if (!v) {
            v = xcalloc(1, sizeof *v);
            map_put(&g_dirsync, t[1], 0, v);
        }
        *v = seq;
    }
    /* fault, rangesync, dirsyncfail, exchange: for the reader only */
}

static int read_log(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "powercut: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long seq = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        seq++;
        if (line[len - 1] == '\n')
            line[--len] = 0;
        char *t[8];
        int n = 0;
        char *save = NULL;
        for (char *s = strtok_r(line, " ", &save); s && n < 8; s = strtok_r(NULL, " ", &save))
            t[n++] = s;
        if (n == 0)
            continue;
        for (int k = 1; k < n; k++)
            unescape(t[k]);
        apply_record(t, n, seq);
    }
    free(line);
    fclose(f);
    return 0;
}

/* ---- the tree ---- */

struct ent {
    char *path;
    struct stat st;
};
static struct ent *g_ents;
static size_t g_nents, g_capents;

static int walk_cb(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type != FTW_F && type != FTW_D && type != FTW_DP)
        return 0;
    if (g_nents == g_capents) {
        g_capents = g_capents ? g_capents * 2 : 256;
        g_ents = realloc(g_ents, g_capents * sizeof *g_ents);
        if (!g_ents) {
            perror("powercut");
            exit(2);
        }
    }
    g_ents[g_nents].path = xstrdup(p);
    g_ents[g_nents].st = *st;
    g_nents++;
    return 0;
}

static int cmp_ent(const void *a, const void *b)
{
    return strcmp(((const struct ent *)a)->path, ((const struct ent *)b)->path);
}

static int rm_cb(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP)
        return rmdir(p) < 0 ? -1 : 0;
    return unlink(p) < 0 ? -1 : 0;
}

static int zero_range(const char *p, uint64_t a, uint64_t b)
{
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    static char zeros[65536];
    while (a < b) {
        size_t n = b - a > sizeof zeros ? sizeof zeros : (size_t)(b - a);
        ssize_t w = pwrite(fd, zeros, n, (off_t)a);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        a += (uint64_t)w;
    }
    return close(fd);
}

static void usage(void)
{
    fprintf(stderr, "usage: powercut [-n] [-s] LOG ROOT\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int dry = 0, strict = 0, opt;
    while ((opt = getopt(argc, argv, "ns")) != -1) {
        if (opt == 'n')
            dry = 1;
        else if (opt == 's')
            strict = 1;
        else
            usage();
    }
    if (argc - optind != 2)
        usage();
    const char *log = argv[optind], *rootarg = argv[optind + 1];
    char root[PATH_MAX];
    if (!realpath(rootarg, root)) {
        fprintf(stderr, "powercut: %s: %s\n", rootarg, strerror(errno));
        return 2;
    }
    if (read_log(log) < 0)
        return 2;
    struct stat logst;
    int have_logst = stat(log, &logst) == 0;

    if (nftw(root, walk_cb, 64, FTW_PHYS) < 0) {
        fprintf(stderr, "powercut: walking %s: %s\n", root, strerror(errno));
        return 2;
    }
    qsort(g_ents, g_nents, sizeof *g_ents, cmp_ent);

    long changed = 0, errors = 0;
    char gone[PATH_MAX] = ""; /* a removed directory: skip what is under it */
    for (size_t k = 0; k < g_nents; k++) {
        const char *p = g_ents[k].path;
        const struct stat *st = &g_ents[k].st;
        size_t gl = strlen(gone);
        if (gl && !strncmp(p, gone, gl) && p[gl] == '/')
            continue;
        if (have_logst && st->st_dev == logst.st_dev && st->st_ino == logst.st_ino)
            continue;
        char parent[PATH_MAX];
        dirname_of(p, parent);
        struct pent *pe = map_get(&g_paths, p, 0);

        if (S_ISDIR(st->st_mode)) {
            if (!strict || !strcmp(p, root) || !pe || !pe->created || !pe->isdir)
                continue;
            if (dirsync_seq(parent) > pe->seq)
                continue;
            printf("rmdir -r %s (made in this run, parent never dirsynced after)\n", p);
            changed++;
            snprintf(gone, sizeof gone, "%s", p);
            if (!dry && nftw(p, rm_cb, 64, FTW_PHYS | FTW_DEPTH) < 0) {
                fprintf(stderr, "powercut: removing %s: %s\n", p, strerror(errno));
                errors++;
            }
            continue;
        }
        if (!S_ISREG(st->st_mode))
            continue;

        struct inode *in = inode_get((uint64_t)st->st_ino, 0);
        int created = (in && in->created) || (pe && pe->created);
        long seq = pe ? pe->seq : (in && in->created ? in->cseq : 0);
        int dir_ok = dirsync_seq(parent) > seq;
        int synced = in && in->synced;
        if (created && !dir_ok && (strict || !synced)) {
            printf("delete %s (created in this run, %s, directory never dirsynced after)\n", p,
                   synced ? "synced" : "never synced");
            changed++;
            if (!dry && unlink(p) < 0) {
                fprintf(stderr, "powercut: unlink %s: %s\n", p, strerror(errno));
                errors++;
            }
            continue;
        }
        if (strict && pe && pe->renamed && !dir_ok)
            printf("note: rename into %s not followed by a dirsync (not reverted)\n", p);
        if (!in || !in->has_d)
            continue; /* untouched */
        uint64_t len = (uint64_t)st->st_size;
        int did = 0;
        if (len > in->d) {
            printf("truncate %s %llu -> %llu\n", p, (unsigned long long)len,
                   (unsigned long long)in->d);
            did = 1;
            if (!dry && truncate(p, (off_t)in->d) < 0) {
                fprintf(stderr, "powercut: truncate %s: %s\n", p, strerror(errno));
                errors++;
            }
            len = in->d;
        }
        for (size_t r = 0; r < in->nlost; r++) {
            uint64_t a = in->lost[r].a, b = in->lost[r].b < len ? in->lost[r].b : len;
            if (a >= b)
                continue;
            printf("zero %s %llu..%llu (lost by a failed sync)\n", p, (unsigned long long)a,
                   (unsigned long long)b);
            did = 1;
            if (!dry && zero_range(p, a, b) < 0) {
                fprintf(stderr, "powercut: zeroing %s: %s\n", p, strerror(errno));
                errors++;
            }
        }
        changed += did;
    }
    fflush(stdout);
    fprintf(stderr, "powercut: %ld records (%ld syncs) since the last cut, %ld files changed%s\n",
            g_records, g_syncs, changed, dry ? " (dry run)" : "");
    if (!dry) {
        FILE *f = fopen(log, "a");
        if (!f || fputs("powercut\n", f) == EOF || fclose(f) != 0) {
            fprintf(stderr, "powercut: cannot append the marker to %s\n", log);
            return 2;
        }
    }
    return errors ? 2 : 0;
}
