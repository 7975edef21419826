/*
 * tests/shim/krshim.c - LD_PRELOAD shim for power-cut simulation and I/O
 * fault injection (tests only; never linked into krappy).
 *
 * Build: make BUILD=asan tests-build  ->  build/asan/shim/libkrshim.so
 *        (built without sanitizers, works inside ASan processes).
 *
 * USE
 *   LD_PRELOAD=build/asan/shim/libkrshim.so \
 *   ASAN_OPTIONS=verify_asan_link_order=0:$ASAN_OPTIONS \
 *   KRAPPY_SHIM_ROOT=/tmp/t/data KRAPPY_SHIM_LOG=/tmp/t/dur.log \
 *   KRAPPY_SHIM_FAULTS=/tmp/t/faults  krappyd --data /tmp/t/data ...
 *   ... kill -9 ...;  build/asan/shim/powercut /tmp/t/dur.log /tmp/t/data
 *   ... restart krappyd on the same data (same log: powercut wrote a marker).
 *
 * ENVIRONMENT
 *   KRAPPY_SHIM_ROOT    directory; only files and directories under it are
 *                       tracked (paths are canonicalised: /proc/self/fd for
 *                       opened fds, realpath(parent)/name for path calls).
 *                       Unset: the shim passes everything straight through.
 *   KRAPPY_SHIM_LOG     durability log, opened O_WRONLY|O_APPEND|O_CREAT|
 *                       O_CLOEXEC at the first interposed call; keep it OUTSIDE
 *                       ROOT. Unset: nothing is logged (faults still work).
 *   KRAPPY_SHIM_FAULTS  fault control file, re-read whenever its inode, size,
 *                       mtime or ctime changes (checked by stat(2) on every
 *                       faultable call on a tracked file). Missing or empty:
 *                       no faults. Change it by writing a temp file and
 *                       rename(2)-ing it over: an inode change is always seen
 *                       (two in-place rewrites of equal size within one
 *                       timestamp tick would not be).
 *
 * DURABILITY LOG - one line per record, each written with one write(2);
 * paths are canonical and escaped (' ', '\t', '\n', '\r', '%' -> %XX):
 *   create <ino> <path>          O_CREAT open (or fopen "w"/"a") created it
 *   open <ino> <size> <path>     writable open of an existing regular file
 *                                (its size then: the base durable length)
 *   sync <ino> <len> <path>      fsync/fdatasync of a regular file succeeded;
 *                                len = st_size just before the call = durable
 *                                length. `grep -c '^sync '` counts syncs.
 *   dirsync <path>               fsync/fdatasync of a directory succeeded
 *   dirsyncfail <path>           ... and failed (for the record only)
 *   syncfail <ino> <len> <path>  fsync/fdatasync failed (injected or real):
 *                                powercut treats the bytes written since the
 *                                last durable length, up to len, as lost
 *                                (zeroed) unless later truncated away -
 *                                Linux marks such pages clean after EIO.
 *   rangesync <ino> <len> <path> sync_file_range(...WAIT_AFTER) succeeded;
 *                                NOT durable (no metadata/size), not counted
 *   truncate <ino> <len> <path>  ftruncate/truncate succeeded (treated as
 *                                durable at once, like a journalled fs)
 *   rename <old> <new>           rename/renameat/renameat2 succeeded
 *   exchange <a> <b>             renameat2(RENAME_EXCHANGE) (not modelled)
 *   link <old> <new>             link/linkat succeeded
 *   unlink <path> | rmdir <path> unlink/unlinkat/rmdir succeeded
 *   mkdir <ino> <path>           mkdir/mkdirat succeeded
 *   fault <op> <ERRNO|SHORT> <path>   an injected fault fired
 *   powercut                     appended by the powercut tool: records
 *                                before it are history, already applied
 *
 * FAULT FILE - one rule a line; '#' starts a comment:
 *   OP SUBSTRING ERRNO [after=N] [times=M]
 *   OP         write (write, pwrite, writev, pwritev, pwritev2 and 64-bit
 *              forms) | sync (fsync, fdatasync, sync_file_range unless its
 *              flags are 0 - RocksDB's probe asserts on it) | open
 *              (O_CREAT opens, fopen "w"/"a") | truncate (ftruncate,
 *              truncate) | fallocate (fallocate, posix_fallocate) | rename
 *              | unlink (unlink, unlinkat, rmdir) | mkdir | any; several ops
 *              may be joined with commas: write,sync
 *   SUBSTRING  matched (strstr) against the canonical path of the fd (or of
 *              either path of a rename); '*' matches every tracked path
 *   ERRNO      ENOSPC, EIO, EDQUOT, EROFS, EFBIG, ENOMEM, EINTR, EAGAIN,
 *              EPERM, EACCES, ENOENT, EEXIST, EBADF, EINVAL, EMFILE, ENFILE,
 *              EXDEV, ETIMEDOUT, or a number; or SHORT (write only): the
 *              write writes half its bytes (rounded down, writes of < 2
 *              bytes are untouched) and returns that count; or DELAY: the
 *              call sleeps ms=N milliseconds (default 1000), then succeeds
 *              (slow disks; keeps a start-up in recovery long enough to see).
 *   after=N    the first N matching calls succeed (default 0)
 *   times=M    fire M times then stop (default: forever; SHORT, DELAY: 1)
 *   ms=N       DELAY only: how long to sleep
 *   Counters restart whenever the file is re-read. The first rule that is
 *   due fires; every matching rule counts the call. A failing call does
 *   nothing (no bytes written, no file created, no sync done), except that
 *   a sync fault also logs syncfail. Example:
 *     write /topics/orders/ ENOSPC after=2
 *     sync  /view/  EIO times=1
 *     write .sst SHORT
 *
 * INTERPOSED: open open64 openat openat64 __open_2 __open64_2 __openat_2
 *   __openat64_2 creat creat64 fopen fopen64 fclose closedir close dup dup2
 *   dup3 write pwrite pwrite64 writev pwritev pwritev64 pwritev2 pwritev64v2
 *   fsync fdatasync sync_file_range ftruncate ftruncate64 truncate truncate64
 *   fallocate fallocate64 posix_fallocate posix_fallocate64 rename renameat
 *   renameat2 link linkat unlink unlinkat rmdir mkdir mkdirat.
 *   (librocksdb 7.8 imports open close write pwrite fsync fdatasync
 *   sync_file_range fallocate posix_fallocate ftruncate rename link unlink
 *   rmdir mkdir fopen fdopen fclose; all covered - fdopen needs nothing.)
 *   A sync record is written after the real call returns, so before the
 *   program can acknowledge anything that depends on it.
 *
 * LIMITS: writes through stdio (fwrite) and mmap/msync are not seen (fsync of
 *   such a file is, and logs the right length); fds made by fcntl(F_DUPFD)
 *   or numbered >= 65536 are not tracked (an fsync of an untracked fd
 *   under ROOT, e.g. dirfd(opendir()), adopts it); the log fd is kept at
 *   900 or above, and close() of it is ignored.
 */
#undef _FORTIFY_SOURCE
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>

#define EXPORT   __attribute__((visibility("default")))
#define MAXFD    65536
#define MAXRULES 64
#define ESC_MAX  (PATH_MAX + 64)

/* ---- the next definitions (libasan's interceptors or libc) ---- */

static void *next_sym(void **slot, const char *name)
{
    void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!p) {
        p = dlsym(RTLD_NEXT, name);
        __atomic_store_n(slot, p, __ATOMIC_RELEASE);
    }
    return p;
}
#define REAL(name)            ((__typeof__(real_##name))next_sym((void **)&real_##name, #name))
#define DECL(ret, name, args) static ret(*real_##name) args

DECL(int, open, (const char *, int, ...));
DECL(int, open64, (const char *, int, ...));
DECL(int, openat, (int, const char *, int, ...));
DECL(int, openat64, (int, const char *, int, ...));
DECL(int, __open_2, (const char *, int));
DECL(int, __open64_2, (const char *, int));
DECL(int, __openat_2, (int, const char *, int));
DECL(int, __openat64_2, (int, const char *, int));
DECL(int, creat, (const char *, mode_t));
DECL(int, creat64, (const char *, mode_t));
DECL(FILE *, fopen, (const char *, const char *));
DECL(FILE *, fopen64, (const char *, const char *));
DECL(int, fclose, (FILE *));
DECL(int, closedir, (DIR *));
DECL(int, close, (int));
DECL(int, dup, (int));
DECL(int, dup2, (int, int));
DECL(int, dup3, (int, int, int));
DECL(ssize_t, write, (int, const void *, size_t));
DECL(ssize_t, pwrite, (int, const void *, size_t, off_t));
DECL(ssize_t, pwrite64, (int, const void *, size_t, off64_t));
DECL(ssize_t, writev, (int, const struct iovec *, int));
DECL(ssize_t, pwritev, (int, const struct iovec *, int, off_t));
DECL(ssize_t, pwritev64, (int, const struct iovec *, int, off64_t));
DECL(ssize_t, pwritev2, (int, const struct iovec *, int, off_t, int));
DECL(ssize_t, pwritev64v2, (int, const struct iovec *, int, off64_t, int));
DECL(int, fsync, (int));
DECL(int, fdatasync, (int));
DECL(int, sync_file_range, (int, off64_t, off64_t, unsigned int));
DECL(int, ftruncate, (int, off_t));
DECL(int, ftruncate64, (int, off64_t));
DECL(int, truncate, (const char *, off_t));
DECL(int, truncate64, (const char *, off64_t));
DECL(int, fallocate, (int, int, off_t, off_t));
DECL(int, fallocate64, (int, int, off64_t, off64_t));
DECL(int, posix_fallocate, (int, off_t, off_t));
DECL(int, posix_fallocate64, (int, off64_t, off64_t));
DECL(int, rename, (const char *, const char *));
DECL(int, renameat, (int, const char *, int, const char *));
DECL(int, renameat2, (int, const char *, int, const char *, unsigned int));
DECL(int, link, (const char *, const char *));
DECL(int, linkat, (int, const char *, int, const char *, int));
DECL(int, unlink, (const char *));
DECL(int, unlinkat, (int, const char *, int));
DECL(int, rmdir, (const char *));
DECL(int, mkdir, (const char *, mode_t));
DECL(int, mkdirat, (int, const char *, mode_t));

/* glibc's fortify entry points (declared only under _FORTIFY_SOURCE) */
int __open_2(const char *, int);
int __open64_2(const char *, int);
int __openat_2(int, const char *, int);
int __openat64_2(int, const char *, int);

/* ---- state ---- */

enum { K_NONE = 0, K_REG = 1, K_DIR = 2 };

struct fdent {
    char *path; /* canonical; NULL = not tracked */
    int kind;
};

static struct fdent g_fds[MAXFD];
static int g_hifd = -1; /* highest fd ever tracked */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static __thread int t_in __attribute__((tls_model("initial-exec")));

static int g_enabled;
static char g_root_lex[PATH_MAX]; /* absolute, lexically normalised */
static char g_root[PATH_MAX];     /* canonical once it exists */
static int g_root_ok;
static int g_logfd = -1;
static char g_faults[PATH_MAX];
static int g_have_faults;

enum {
    OP_WRITE = 1,
    OP_SYNC = 2,
    OP_OPEN = 4,
    OP_TRUNCATE = 8,
    OP_FALLOC = 16,
    OP_RENAME = 32,
    OP_UNLINK = 64,
    OP_MKDIR = 128,
    OP_ANY = 0xff
};
#define ERR_SHORT (-1)
#define ERR_DELAY (-2)

struct rule {
    unsigned ops;
    char sub[256];
    int err; /* errno, ERR_SHORT or ERR_DELAY */
    unsigned long after, times, seen, fired, ms;
};
static struct rule g_rules[MAXRULES];
static int g_nrules;
static struct {
    int exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim, ctim;
} g_fst;

static const struct {
    const char *name;
    int no;
} g_errnames[] = {
    {"ENOSPC", ENOSPC},   {"EIO", EIO},       {"EDQUOT", EDQUOT},
    {"EROFS", EROFS},     {"EFBIG", EFBIG},   {"ENOMEM", ENOMEM},
    {"EINTR", EINTR},     {"EAGAIN", EAGAIN}, {"EPERM", EPERM},
    {"EACCES", EACCES},   {"ENOENT", ENOENT}, {"EEXIST", EEXIST},
    {"EBADF", EBADF},     {"EINVAL", EINVAL}, {"EMFILE", EMFILE},
    {"ENFILE", ENFILE},   {"EXDEV", EXDEV},   {"ETIMEDOUT", ETIMEDOUT},
    {"ENOTDIR", ENOTDIR}, {"EISDIR", EISDIR},
};

static const char *errname(int e, char *buf, size_t n)
{
    if (e == ERR_SHORT)
        return "SHORT";
    if (e == ERR_DELAY)
        return "DELAY";
    for (size_t i = 0; i < sizeof g_errnames / sizeof g_errnames[0]; i++)
        if (g_errnames[i].no == e)
            return g_errnames[i].name;
    snprintf(buf, n, "%d", e);
    return buf;
}

static const char *opname(unsigned op)
{
    switch (op) {
    case OP_WRITE:
        return "write";
    case OP_SYNC:
        return "sync";
    case OP_OPEN:
        return "open";
    case OP_TRUNCATE:
        return "truncate";
    case OP_FALLOC:
        return "fallocate";
    case OP_RENAME:
        return "rename";
    case OP_UNLINK:
        return "unlink";
    case OP_MKDIR:
        return "mkdir";
    default:
        return "?";
    }
}

/* ---- paths ---- */

/* Lexically normalise an absolute path in place: //, /./, /../ */
static void lex_normalise(char *p)
{
    char out[PATH_MAX * 2];
    size_t o = 0;
    const char *s = p;
    while (*s) {
        while (*s == '/')
            s++;
        if (!*s)
            break;
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == 1 && s[0] == '.') {
            /* skip */
        } else if (len == 2 && s[0] == '.' && s[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
        } else if (o + 1 + len < sizeof out) {
            out[o++] = '/';
            memcpy(out + o, s, len);
            o += len;
        }
        s += len;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = 0;
    if (o < PATH_MAX)
        memcpy(p, out, o + 1);
}

static int fd_path(int fd, char *out, size_t n)
{
    char lnk[64];
    snprintf(lnk, sizeof lnk, "/proc/self/fd/%d", fd);
    ssize_t r = readlink(lnk, out, n - 1);
    if (r <= 0)
        return -1;
    out[r] = 0;
    return out[0] == '/' ? 0 : -1;
}

/*
 * Canonical path of (dirfd, path) without following a final symlink:
 * realpath() of the parent directory plus the last component.
 */
static int resolve_at(int dirfd, const char *path, char *out)
{
    char abs[PATH_MAX * 2];
    if (!path || !*path)
        return -1;
    if (path[0] == '/') {
        snprintf(abs, sizeof abs, "%s", path);
    } else {
        char base[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof base))
                return -1;
        } else if (fd_path(dirfd, base, sizeof base) < 0) {
            return -1;
        }
        snprintf(abs, sizeof abs, "%s/%s", base, path);
    }
    size_t l = strlen(abs);
    while (l > 1 && abs[l - 1] == '/')
        abs[--l] = 0;
    char *slash = strrchr(abs, '/');
    const char *last = slash + 1;
    if (!strcmp(last, ".") || !strcmp(last, "..") || !*last) {
        if (realpath(abs, out))
            return 0;
        lex_normalise(abs);
        snprintf(out, PATH_MAX, "%s", abs);
        return 0;
    }
    char parent[PATH_MAX * 2], pc[PATH_MAX];
    size_t plen = (size_t)(slash - abs);
    memcpy(parent, abs, plen);
    parent[plen] = 0;
    if (plen == 0)
        strcpy(parent, "/");
    if (realpath(parent, pc)) {
        int n = snprintf(out, PATH_MAX, "%s/%s", strcmp(pc, "/") ? pc : "", last);
        return n > 0 && n < PATH_MAX ? 0 : -1;
    }
    lex_normalise(abs);
    snprintf(out, PATH_MAX, "%s", abs);
    return 0;
}

static int prefix_of(const char *root, const char *p)
{
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/')
        return 1;
    return strncmp(p, root, n) == 0 && (p[n] == 0 || p[n] == '/');
}

static int under_root(const char *canon)
{
    if (!g_enabled || !canon)
        return 0;
    if (!__atomic_load_n(&g_root_ok, __ATOMIC_ACQUIRE)) {
        char tmp[PATH_MAX];
        if (realpath(g_root_lex, tmp)) {
            pthread_mutex_lock(&g_lock);
            if (!g_root_ok) {
                memcpy(g_root, tmp, sizeof g_root);
                __atomic_store_n(&g_root_ok, 1, __ATOMIC_RELEASE);
            }
            pthread_mutex_unlock(&g_lock);
        }
    }
    if (__atomic_load_n(&g_root_ok, __ATOMIC_ACQUIRE) && prefix_of(g_root, canon))
        return 1;
    return prefix_of(g_root_lex, canon);
}

/* ---- init and log ---- */

static void fork_prepare(void)
{
    pthread_mutex_lock(&g_lock);
}

static void fork_release(void)
{
    pthread_mutex_unlock(&g_lock);
}

static void init_once(void)
{
    pthread_atfork(fork_prepare, fork_release, fork_release);
    const char *root = getenv("KRAPPY_SHIM_ROOT");
    const char *log = getenv("KRAPPY_SHIM_LOG");
    const char *faults = getenv("KRAPPY_SHIM_FAULTS");
    if (root && *root) {
        char cwd[PATH_MAX], tmp[PATH_MAX * 2];
        if (root[0] == '/')
            snprintf(tmp, sizeof tmp, "%s", root);
        else if (getcwd(cwd, sizeof cwd))
            snprintf(tmp, sizeof tmp, "%s/%s", cwd, root);
        else
            snprintf(tmp, sizeof tmp, "/%s", root);
        lex_normalise(tmp); /* leaves it below PATH_MAX or unchanged */
        tmp[PATH_MAX - 1] = 0;
        memcpy(g_root_lex, tmp, PATH_MAX);
        g_enabled = 1;
        if (realpath(g_root_lex, g_root))
            g_root_ok = 1;
    }
    if (g_enabled && log && *log) {
        int fd = REAL(open)(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
            int hi = fcntl(fd, F_DUPFD_CLOEXEC, 900);
            if (hi >= 0) {
                REAL(close)(fd);
                fd = hi;
            }
            g_logfd = fd;
        } else {
            static const char msg[] = "krshim: cannot open KRAPPY_SHIM_LOG\n";
            (void)!REAL(write)(2, msg, sizeof msg - 1);
        }
    }
    if (g_enabled && faults && *faults) {
        snprintf(g_faults, sizeof g_faults, "%s", faults);
        g_have_faults = 1;
    }
}

static void ensure_init(void)
{
    int saved = errno;
    t_in = 1;
    pthread_once(&g_once, init_once);
    t_in = 0;
    errno = saved;
}

static void escape(const char *in, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *in && o + 4 < ESC_MAX; in++) {
        unsigned char c = (unsigned char)*in;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '%') {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = 0;
}

__attribute__((format(printf, 1, 2))) static void logf_(const char *fmt, ...)
{
    if (g_logfd < 0)
        return;
    char line[2 * ESC_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    (void)!REAL(write)(g_logfd, line, (size_t)n);
}

/* `rec <ino> [<num>] <path>` */
static void log_ino(const char *rec, const struct stat *st, long long num, int with_num,
                    const char *path)
{
    char e[ESC_MAX];
    escape(path, e);
    if (with_num)
        logf_("%s %llu %lld %s", rec, (unsigned long long)st->st_ino, num, e);
    else
        logf_("%s %llu %s", rec, (unsigned long long)st->st_ino, e);
}

static void log_path(const char *rec, const char *a, const char *b)
{
    char ea[ESC_MAX], eb[ESC_MAX];
    escape(a, ea);
    if (b) {
        escape(b, eb);
        logf_("%s %s %s", rec, ea, eb);
    } else {
        logf_("%s %s", rec, ea);
    }
}

/* ---- faults ---- */

static void parse_faults(const char *buf)
{
    g_nrules = 0;
    const char *s = buf;
    while (*s && g_nrules < MAXRULES) {
        const char *eol = strchr(s, '\n');
        size_t len = eol ? (size_t)(eol - s) : strlen(s);
        char line[1024];
        if (len >= sizeof line)
            len = sizeof line - 1;
        memcpy(line, s, len);
        line[len] = 0;
        s += len + (eol ? 1 : 0);
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *save = NULL;
        char *op = strtok_r(line, " \t\r", &save);
        char *sub = op ? strtok_r(NULL, " \t\r", &save) : NULL;
        char *err = sub ? strtok_r(NULL, " \t\r", &save) : NULL;
        if (!err)
            continue;
        struct rule r;
        memset(&r, 0, sizeof r);
        char opbuf[128], *osave = NULL;
        snprintf(opbuf, sizeof opbuf, "%s", op);
        for (char *o = strtok_r(opbuf, ",", &osave); o; o = strtok_r(NULL, ",", &osave)) {
            if (!strcmp(o, "write"))
                r.ops |= OP_WRITE;
            else if (!strcmp(o, "sync"))
                r.ops |= OP_SYNC;
            else if (!strcmp(o, "open"))
                r.ops |= OP_OPEN;
            else if (!strcmp(o, "truncate"))
                r.ops |= OP_TRUNCATE;
            else if (!strcmp(o, "fallocate"))
                r.ops |= OP_FALLOC;
            else if (!strcmp(o, "rename"))
                r.ops |= OP_RENAME;
            else if (!strcmp(o, "unlink"))
                r.ops |= OP_UNLINK;
            else if (!strcmp(o, "mkdir"))
                r.ops |= OP_MKDIR;
            else if (!strcmp(o, "any") || !strcmp(o, "*"))
                r.ops |= OP_ANY;
        }
        if (!r.ops)
            continue;
        snprintf(r.sub, sizeof r.sub, "%s", strcmp(sub, "*") ? sub : "");
        if (!strcmp(err, "SHORT")) {
            r.err = ERR_SHORT;
            r.times = 1;
        } else if (!strcmp(err, "DELAY")) {
            r.err = ERR_DELAY;
            r.times = 1;
            r.ms = 1000;
        } else {
            r.err = 0;
            for (size_t i = 0; i < sizeof g_errnames / sizeof g_errnames[0]; i++)
                if (!strcmp(g_errnames[i].name, err))
                    r.err = g_errnames[i].no;
            if (!r.err)
                r.err = atoi(err);
            if (r.err <= 0)
                continue;
            r.times = (unsigned long)-1;
        }
        for (char *kv = strtok_r(NULL, " \t\r", &save); kv; kv = strtok_r(NULL, " \t\r", &save)) {
            if (!strncmp(kv, "after=", 6))
                r.after = strtoul(kv + 6, NULL, 10);
            else if (!strncmp(kv, "times=", 6))
                r.times = strtoul(kv + 6, NULL, 10);
            else if (!strncmp(kv, "ms=", 3))
                r.ms = strtoul(kv + 3, NULL, 10);
        }
        g_rules[g_nrules++] = r;
    }
}

/* Under g_lock. Re-read the control file if it changed. */
static void reload_faults(void)
{
    struct stat st;
    if (stat(g_faults, &st) < 0) {
        if (g_fst.exists) {
            g_fst.exists = 0;
            g_nrules = 0;
        }
        return;
    }
    if (g_fst.exists && g_fst.dev == st.st_dev && g_fst.ino == st.st_ino &&
        g_fst.size == st.st_size && g_fst.mtim.tv_sec == st.st_mtim.tv_sec &&
        g_fst.mtim.tv_nsec == st.st_mtim.tv_nsec && g_fst.ctim.tv_sec == st.st_ctim.tv_sec &&
        g_fst.ctim.tv_nsec == st.st_ctim.tv_nsec)
        return;
    g_fst.exists = 1;
    g_fst.dev = st.st_dev;
    g_fst.ino = st.st_ino;
    g_fst.size = st.st_size;
    g_fst.mtim = st.st_mtim;
    g_fst.ctim = st.st_ctim;
    static char buf[65536];
    size_t n = 0;
    int fd = REAL(open)(g_faults, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r;
        while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
            n += (size_t)r;
        REAL(close)(fd);
    }
    buf[n] = 0;
    parse_faults(buf);
}

/*
 * Under g_lock. Decide whether a call of `op` on `path` (and `path2`) fails.
 * Returns 0, an errno, or ERR_SHORT; logs the fault.
 */
static int fault_locked(unsigned op, const char *path, const char *path2)
{
    if (!g_have_faults)
        return 0;
    reload_faults();
    int chosen = 0;
    unsigned long delay_ms = 0;
    for (int i = 0; i < g_nrules; i++) {
        struct rule *r = &g_rules[i];
        if (!(r->ops & op))
            continue;
        if (r->err == ERR_SHORT && op != OP_WRITE)
            continue;
        if (!(strstr(path, r->sub) || (path2 && strstr(path2, r->sub))))
            continue;
        r->seen++;
        if (!chosen && r->seen > r->after && r->fired < r->times) {
            r->fired++;
            chosen = r->err;
            delay_ms = r->ms;
        }
    }
    if (chosen) {
        char e[ESC_MAX], nb[16];
        escape(path, e);
        logf_("fault %s %s %s", opname(op), errname(chosen, nb, sizeof nb), e);
    }
    if (chosen == ERR_DELAY) {
        /* Under g_lock: other tracked calls wait too, as on a stalled disk. */
        struct timespec ts = {(time_t)(delay_ms / 1000), (long)(delay_ms % 1000) * 1000000L};
        int saved = errno;
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        errno = saved;
        chosen = 0;
    }
    return chosen;
}

static int fault_path(unsigned op, const char *path, const char *path2)
{
    if (!g_have_faults)
        return 0;
    pthread_mutex_lock(&g_lock);
    int r = fault_locked(op, path, path2);
    pthread_mutex_unlock(&g_lock);
    return r;
}

/* ---- fd table ---- */

static inline int tracked(int fd)
{
    return fd >= 0 && fd < MAXFD && __atomic_load_n(&g_fds[fd].path, __ATOMIC_ACQUIRE) != NULL;
}

static int fault_fd(int fd, unsigned op)
{
    if (!g_have_faults)
        return 0;
    int r = 0;
    pthread_mutex_lock(&g_lock);
    if (g_fds[fd].path)
        r = fault_locked(op, g_fds[fd].path, NULL);
    pthread_mutex_unlock(&g_lock);
    return r;
}

/* Copy the fd's path and kind; 0 if tracked. */
static int fd_info(int fd, char *path, int *kind)
{
    int ok = -1;
    pthread_mutex_lock(&g_lock);
    if (g_fds[fd].path) {
        snprintf(path, PATH_MAX, "%s", g_fds[fd].path);
        *kind = g_fds[fd].kind;
        ok = 0;
    }
    pthread_mutex_unlock(&g_lock);
    return ok;
}

static void set_fd(int fd, const char *path, int kind)
{
    if (fd < 0 || fd >= MAXFD)
        return;
    char *p = path ? strdup(path) : NULL;
    pthread_mutex_lock(&g_lock);
    char *old = g_fds[fd].path;
    g_fds[fd].kind = kind;
    if (p && fd > g_hifd)
        g_hifd = fd;
    __atomic_store_n(&g_fds[fd].path, p, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&g_lock);
    free(old);
}

static void untrack(int fd)
{
    if (tracked(fd)) {
        int was = t_in;
        t_in = 1; /* a signal handler's write must not wait on g_lock */
        set_fd(fd, NULL, K_NONE);
        t_in = was;
    }
}

static void copy_fd(int from, int to)
{
    if (to < 0 || to >= MAXFD)
        return;
    char path[PATH_MAX];
    int kind;
    if (from >= 0 && from < MAXFD && fd_info(from, path, &kind) == 0)
        set_fd(to, path, kind);
    else
        untrack(to);
}

/* After a rename: fix the paths of open fds under `from`. */
static void rename_fds(const char *from, const char *to)
{
    size_t fl = strlen(from);
    pthread_mutex_lock(&g_lock);
    for (int fd = 0; fd <= g_hifd; fd++) {
        char *p = g_fds[fd].path;
        if (!p || strncmp(p, from, fl) || (p[fl] != 0 && p[fl] != '/'))
            continue;
        char np[PATH_MAX];
        int n = snprintf(np, sizeof np, "%s%s", to, p + fl);
        if (n <= 0 || n >= (int)sizeof np)
            continue;
        char *q = strdup(np);
        if (!q)
            continue;
        __atomic_store_n(&g_fds[fd].path, q, __ATOMIC_RELEASE);
        free(p);
    }
    pthread_mutex_unlock(&g_lock);
}

/* ---- open ---- */

struct openctx {
    int active; /* O_CREAT under root: pre-checked */
    int existed;
};

static int is_creat(int flags)
{
    return (flags & O_CREAT) && (flags & O_TMPFILE) != O_TMPFILE;
}

static int wants_mode(int flags)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

/* Before an open: fault check and existence check for O_CREAT. -1 = fail. */
static int open_pre(int dirfd, const char *path, int flags, struct openctx *c)
{
    c->active = 0;
    c->existed = 1;
    if (t_in)
        return 0;
    ensure_init();
    if (!g_enabled || !is_creat(flags))
        return 0;
    t_in = 1;
    char rp[PATH_MAX];
    int rc = 0;
    if (resolve_at(dirfd, path, rp) == 0 && under_root(rp)) {
        int e = fault_path(OP_OPEN, rp, NULL);
        if (e > 0) {
            t_in = 0;
            errno = e;
            return -1;
        }
        struct stat st;
        c->active = 1;
        c->existed = fstatat(dirfd, path, &st, 0) == 0;
    }
    t_in = 0;
    return rc;
}

static void open_post(int fd, int flags, const struct openctx *c)
{
    if (fd < 0 || t_in || !g_enabled)
        return;
    int saved = errno;
    t_in = 1;
    char p[PATH_MAX];
    int kind = K_NONE;
    struct stat st;
    if (fd_path(fd, p, sizeof p) == 0 && under_root(p) && fstat(fd, &st) == 0) {
        if (S_ISREG(st.st_mode))
            kind = K_REG;
        else if (S_ISDIR(st.st_mode))
            kind = K_DIR;
    }
    if (kind == K_NONE) {
        untrack(fd);
    } else {
        set_fd(fd, p, kind);
        if (kind == K_REG) {
            if (c->active && !c->existed)
                log_ino("create", &st, 0, 0, p);
            else if ((flags & O_ACCMODE) != O_RDONLY)
                log_ino("open", &st, (long long)st.st_size, 1, p);
        }
    }
    t_in = 0;
    errno = saved;
}

#define OPEN_BODY(callexpr, dirfd)                                                                 \
    struct openctx c;                                                                              \
    if (open_pre(dirfd, path, flags, &c) < 0)                                                      \
        return -1;                                                                                 \
    int fd = callexpr;                                                                             \
    open_post(fd, flags, &c);                                                                      \
    return fd;

#define GET_MODE                                                                                   \
    mode_t mode = 0;                                                                               \
    if (wants_mode(flags)) {                                                                       \
        va_list ap;                                                                                \
        va_start(ap, flags);                                                                       \
        mode = (mode_t)va_arg(ap, int);                                                            \
        va_end(ap);                                                                                \
    }

EXPORT int open(const char *path, int flags,
                ...){GET_MODE OPEN_BODY(REAL(open)(path, flags, mode), AT_FDCWD)}

EXPORT int open64(const char *path, int flags,
                  ...){GET_MODE OPEN_BODY(REAL(open64)(path, flags, mode), AT_FDCWD)}

EXPORT int openat(int dirfd, const char *path, int flags,
                  ...){GET_MODE OPEN_BODY(REAL(openat)(dirfd, path, flags, mode), dirfd)}

EXPORT int openat64(int dirfd, const char *path, int flags,
                    ...){GET_MODE OPEN_BODY(REAL(openat64)(dirfd, path, flags, mode), dirfd)}

EXPORT int __open_2(const char *path, int flags){OPEN_BODY(REAL(__open_2)(path, flags), AT_FDCWD)}

EXPORT
    int __open64_2(const char *path, int flags){OPEN_BODY(REAL(__open64_2)(path, flags), AT_FDCWD)}

EXPORT int __openat_2(int dirfd, const char *path,
                      int flags){OPEN_BODY(REAL(__openat_2)(dirfd, path, flags), dirfd)}

EXPORT int __openat64_2(int dirfd, const char *path,
                        int flags){OPEN_BODY(REAL(__openat64_2)(dirfd, path, flags), dirfd)}

EXPORT int creat(const char *path, mode_t mode)
{
    int flags = O_CREAT | O_WRONLY | O_TRUNC;
    OPEN_BODY(REAL(creat)(path, mode), AT_FDCWD)
}

EXPORT int creat64(const char *path, mode_t mode)
{
    int flags = O_CREAT | O_WRONLY | O_TRUNC;
    OPEN_BODY(REAL(creat64)(path, mode), AT_FDCWD)
}

static int fopen_flags(const char *mode)
{
    int plus = mode && strchr(mode, '+') != NULL;
    if (!mode)
        return O_RDONLY;
    if (mode[0] == 'w')
        return (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC;
    if (mode[0] == 'a')
        return (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND;
    return plus ? O_RDWR : O_RDONLY;
}

#define FOPEN_BODY(real)                                                                           \
    int flags = fopen_flags(mode);                                                                 \
    struct openctx c;                                                                              \
    if (open_pre(AT_FDCWD, path, flags, &c) < 0)                                                   \
        return NULL;                                                                               \
    FILE *f = real(path, mode);                                                                    \
    if (f)                                                                                         \
        open_post(fileno(f), flags, &c);                                                           \
    return f;

EXPORT FILE *fopen(const char *path, const char *mode){FOPEN_BODY(REAL(fopen))}

EXPORT FILE *fopen64(const char *path, const char *mode){FOPEN_BODY(REAL(fopen64))}

EXPORT int fclose(FILE *f)
{
    if (f)
        untrack(fileno(f));
    return REAL(fclose)(f);
}

EXPORT int closedir(DIR *d)
{
    untrack(dirfd(d));
    return REAL(closedir)(d);
}

EXPORT int close(int fd)
{
    if (fd >= 0 && fd == g_logfd)
        return 0; /* keep the log; the fd number stays taken */
    untrack(fd);
    return REAL(close)(fd);
}

EXPORT int dup(int fd)
{
    int r = REAL(dup)(fd);
    if (r >= 0 && !t_in && tracked(fd)) {
        int saved = errno;
        copy_fd(fd, r);
        errno = saved;
    }
    return r;
}

static void move_logfd(int newfd)
{
    if (newfd < 0 || newfd != g_logfd)
        return;
    int hi = fcntl(g_logfd, F_DUPFD_CLOEXEC, newfd + 1);
    g_logfd = hi; /* the old number is about to be reused by dup2 */
}

EXPORT int dup2(int fd, int newfd)
{
    move_logfd(newfd);
    int r = REAL(dup2)(fd, newfd);
    if (r >= 0 && fd != newfd && !t_in) {
        int saved = errno;
        copy_fd(fd, newfd);
        errno = saved;
    }
    return r;
}

EXPORT int dup3(int fd, int newfd, int flags)
{
    move_logfd(newfd);
    int r = REAL(dup3)(fd, newfd, flags);
    if (r >= 0 && !t_in) {
        int saved = errno;
        copy_fd(fd, newfd);
        errno = saved;
    }
    return r;
}

/* ---- writes ---- */

/* 0 = go on, -1 = fail with errno set, 1 = write half */
static int write_pre(int fd)
{
    if (t_in || !tracked(fd) || !g_have_faults)
        return 0;
    t_in = 1;
    int e = fault_fd(fd, OP_WRITE);
    t_in = 0;
    if (e == ERR_SHORT)
        return 1;
    if (e > 0) {
        errno = e;
        return -1;
    }
    return 0;
}

/* The first half of an iovec array (by bytes); returns the new count. */
static int half_iov(const struct iovec *iov, int cnt, struct iovec *out)
{
    size_t total = 0;
    for (int i = 0; i < cnt; i++)
        total += iov[i].iov_len;
    size_t want = total / 2;
    int n = 0;
    for (int i = 0; i < cnt && want > 0; i++) {
        out[n] = iov[i];
        if (out[n].iov_len > want)
            out[n].iov_len = want;
        want -= out[n].iov_len;
        n++;
    }
    return n;
}

static size_t iov_total(const struct iovec *iov, int cnt)
{
    size_t t = 0;
    for (int i = 0; i < cnt; i++)
        t += iov[i].iov_len;
    return t;
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    int a = write_pre(fd);
    if (a < 0)
        return -1;
    if (a > 0 && n >= 2)
        n /= 2;
    return REAL(write)(fd, buf, n);
}

EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    int a = write_pre(fd);
    if (a < 0)
        return -1;
    if (a > 0 && n >= 2)
        n /= 2;
    return REAL(pwrite)(fd, buf, n, off);
}

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    int a = write_pre(fd);
    if (a < 0)
        return -1;
    if (a > 0 && n >= 2)
        n /= 2;
    return REAL(pwrite64)(fd, buf, n, off);
}

#define IOV_BODY(call_full, call_half)                                                             \
    int a = write_pre(fd);                                                                         \
    if (a < 0)                                                                                     \
        return -1;                                                                                 \
    if (a > 0 && iovcnt > 0 && iovcnt <= IOV_MAX && iov_total(iov, iovcnt) >= 2) {                 \
        struct iovec h[IOV_MAX];                                                                   \
        int hn = half_iov(iov, iovcnt, h);                                                         \
        return call_half;                                                                          \
    }                                                                                              \
    return call_full;

EXPORT ssize_t writev(int fd, const struct iovec *iov,
                      int iovcnt){IOV_BODY(REAL(writev)(fd, iov, iovcnt), REAL(writev)(fd, h, hn))}

EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off){
    IOV_BODY(REAL(pwritev)(fd, iov, iovcnt, off), REAL(pwritev)(fd, h, hn, off))}

EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int iovcnt, off64_t off){
    IOV_BODY(REAL(pwritev64)(fd, iov, iovcnt, off), REAL(pwritev64)(fd, h, hn, off))}

EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int iovcnt, off_t off, int fl)
{
    if (!REAL(pwritev2)) {
        errno = ENOSYS;
        return -1;
    }
    IOV_BODY(REAL(pwritev2)(fd, iov, iovcnt, off, fl), REAL(pwritev2)(fd, h, hn, off, fl))
}

EXPORT ssize_t pwritev64v2(int fd, const struct iovec *iov, int iovcnt, off64_t off, int fl)
{
    if (!REAL(pwritev64v2)) {
        errno = ENOSYS;
        return -1;
    }
    IOV_BODY(REAL(pwritev64v2)(fd, iov, iovcnt, off, fl), REAL(pwritev64v2)(fd, h, hn, off, fl))
}

/* ---- syncs ---- */

/*
 * A sync of an fd the shim did not see being opened (opendir's fd, an fd
 * opened by libc internally): adopt it if it is under ROOT.
 */
static void adopt(int fd)
{
    if (t_in || fd < 0 || fd >= MAXFD || tracked(fd))
        return;
    ensure_init();
    if (!g_enabled)
        return;
    int saved = errno;
    t_in = 1;
    char p[PATH_MAX];
    struct stat st;
    if (fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) &&
        fd_path(fd, p, sizeof p) == 0 && under_root(p))
        set_fd(fd, p, S_ISREG(st.st_mode) ? K_REG : K_DIR);
    t_in = 0;
    errno = saved;
}

static int do_sync(int fd, int (*real)(int))
{
    adopt(fd);
    if (t_in || !tracked(fd))
        return real(fd);
    t_in = 1;
    char path[PATH_MAX];
    int kind;
    if (fd_info(fd, path, &kind) < 0) {
        t_in = 0;
        return real(fd);
    }
    struct stat st;
    int have = fstat(fd, &st) == 0;
    int e = fault_path(OP_SYNC, path, NULL);
    if (e > 0) {
        if (have && kind == K_REG)
            log_ino("syncfail", &st, (long long)st.st_size, 1, path);
        t_in = 0;
        errno = e;
        return -1;
    }
    int r = real(fd);
    int saved = errno;
    if (have) {
        if (kind == K_DIR)
            log_path(r == 0 ? "dirsync" : "dirsyncfail", path, NULL);
        else
            log_ino(r == 0 ? "sync" : "syncfail", &st, (long long)st.st_size, 1, path);
    }
    t_in = 0;
    errno = saved;
    return r;
}

EXPORT int fsync(int fd)
{
    return do_sync(fd, REAL(fsync));
}

EXPORT int fdatasync(int fd)
{
    return do_sync(fd, REAL(fdatasync));
}

/*
 * flags == 0 is a no-op that RocksDB uses to probe for support (and asserts
 * that it fails only with ENOSYS): never faulted.
 */
EXPORT int sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags)
{
    if (flags != 0)
        adopt(fd);
    if (t_in || !tracked(fd) || flags == 0)
        return REAL(sync_file_range)(fd, off, n, flags);
    t_in = 1;
    char path[PATH_MAX];
    int kind;
    if (fd_info(fd, path, &kind) < 0) {
        t_in = 0;
        return REAL(sync_file_range)(fd, off, n, flags);
    }
    int e = fault_path(OP_SYNC, path, NULL);
    if (e > 0) {
        t_in = 0;
        errno = e;
        return -1;
    }
    struct stat st;
    int have = fstat(fd, &st) == 0;
    int r = REAL(sync_file_range)(fd, off, n, flags);
    int saved = errno;
    if (r == 0 && have && (flags & SYNC_FILE_RANGE_WAIT_AFTER))
        log_ino("rangesync", &st, (long long)st.st_size, 1, path);
    t_in = 0;
    errno = saved;
    return r;
}

/* ---- size changes ---- */

static int ftrunc_common(int fd, long long len, int is64)
{
    if (t_in || !tracked(fd))
        return is64 ? REAL(ftruncate64)(fd, len) : REAL(ftruncate)(fd, len);
    t_in = 1;
    int e = fault_fd(fd, OP_TRUNCATE);
    if (e > 0) {
        t_in = 0;
        errno = e;
        return -1;
    }
    int r = is64 ? REAL(ftruncate64)(fd, len) : REAL(ftruncate)(fd, len);
    int saved = errno;
    char path[PATH_MAX];
    int kind;
    struct stat st;
    if (r == 0 && fd_info(fd, path, &kind) == 0 && fstat(fd, &st) == 0)
        log_ino("truncate", &st, len, 1, path);
    t_in = 0;
    errno = saved;
    return r;
}

EXPORT int ftruncate(int fd, off_t len)
{
    return ftrunc_common(fd, len, 0);
}

EXPORT int ftruncate64(int fd, off64_t len)
{
    return ftrunc_common(fd, len, 1);
}

static int trunc_common(const char *path, long long len, int is64)
{
    if (t_in)
        return is64 ? REAL(truncate64)(path, len) : REAL(truncate)(path, len);
    ensure_init();
    char rp[PATH_MAX];
    t_in = 1;
    int under = g_enabled && resolve_at(AT_FDCWD, path, rp) == 0 && under_root(rp);
    if (under) {
        int e = fault_path(OP_TRUNCATE, rp, NULL);
        if (e > 0) {
            t_in = 0;
            errno = e;
            return -1;
        }
    }
    int r = is64 ? REAL(truncate64)(path, len) : REAL(truncate)(path, len);
    int saved = errno;
    struct stat st;
    if (r == 0 && under && stat(path, &st) == 0)
        log_ino("truncate", &st, len, 1, rp);
    t_in = 0;
    errno = saved;
    return r;
}

EXPORT int truncate(const char *path, off_t len)
{
    return trunc_common(path, len, 0);
}

EXPORT int truncate64(const char *path, off64_t len)
{
    return trunc_common(path, len, 1);
}

EXPORT int fallocate(int fd, int mode, off_t off, off_t len)
{
    if (!t_in && tracked(fd)) {
        t_in = 1;
        int e = fault_fd(fd, OP_FALLOC);
        t_in = 0;
        if (e > 0) {
            errno = e;
            return -1;
        }
    }
    return REAL(fallocate)(fd, mode, off, len);
}

EXPORT int fallocate64(int fd, int mode, off64_t off, off64_t len)
{
    if (!t_in && tracked(fd)) {
        t_in = 1;
        int e = fault_fd(fd, OP_FALLOC);
        t_in = 0;
        if (e > 0) {
            errno = e;
            return -1;
        }
    }
    return REAL(fallocate64)(fd, mode, off, len);
}

/* posix_fallocate returns the error number instead of setting errno. */
EXPORT int posix_fallocate(int fd, off_t off, off_t len)
{
    if (!t_in && tracked(fd)) {
        t_in = 1;
        int e = fault_fd(fd, OP_FALLOC);
        t_in = 0;
        if (e > 0)
            return e;
    }
    return REAL(posix_fallocate)(fd, off, len);
}

EXPORT int posix_fallocate64(int fd, off64_t off, off64_t len)
{
    if (!t_in && tracked(fd)) {
        t_in = 1;
        int e = fault_fd(fd, OP_FALLOC);
        t_in = 0;
        if (e > 0)
            return e;
    }
    return REAL(posix_fallocate64)(fd, off, len);
}

/* ---- names ---- */

enum { RN_RENAME, RN_RENAMEAT, RN_RENAMEAT2, RN_LINK, RN_LINKAT };

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static int call_rn(int kind, int od, const char *o, int nd, const char *n, unsigned fl)
{
    switch (kind) {
    case RN_RENAME:
        return REAL(rename)(o, n);
    case RN_RENAMEAT:
        return REAL(renameat)(od, o, nd, n);
    case RN_RENAMEAT2:
        if (!REAL(renameat2)) {
            errno = ENOSYS;
            return -1;
        }
        return REAL(renameat2)(od, o, nd, n, fl);
    case RN_LINK:
        return REAL(link)(o, n);
    default:
        return REAL(linkat)(od, o, nd, n, (int)fl);
    }
}

static int do_rn(int kind, int od, const char *o, int nd, const char *n, unsigned fl)
{
    if (t_in)
        return call_rn(kind, od, o, nd, n, fl);
    ensure_init();
    if (!g_enabled)
        return call_rn(kind, od, o, nd, n, fl);
    t_in = 1;
    char ro[PATH_MAX], rn[PATH_MAX];
    int ok = resolve_at(od, o, ro) == 0 && resolve_at(nd, n, rn) == 0 &&
             (under_root(ro) || under_root(rn));
    if (ok) {
        int e = fault_path(OP_RENAME, ro, rn);
        if (e > 0) {
            t_in = 0;
            errno = e;
            return -1;
        }
    }
    int r = call_rn(kind, od, o, nd, n, fl);
    int saved = errno;
    if (r == 0 && ok) {
        if (kind >= RN_LINK) {
            log_path("link", ro, rn);
        } else if (fl & RENAME_EXCHANGE) {
            log_path("exchange", ro, rn);
        } else {
            log_path("rename", ro, rn);
            rename_fds(ro, rn);
        }
    }
    t_in = 0;
    errno = saved;
    return r;
}

EXPORT int rename(const char *o, const char *n)
{
    return do_rn(RN_RENAME, AT_FDCWD, o, AT_FDCWD, n, 0);
}

EXPORT int renameat(int od, const char *o, int nd, const char *n)
{
    return do_rn(RN_RENAMEAT, od, o, nd, n, 0);
}

EXPORT int renameat2(int od, const char *o, int nd, const char *n, unsigned int fl)
{
    return do_rn(RN_RENAMEAT2, od, o, nd, n, fl);
}

EXPORT int link(const char *o, const char *n)
{
    return do_rn(RN_LINK, AT_FDCWD, o, AT_FDCWD, n, 0);
}

EXPORT int linkat(int od, const char *o, int nd, const char *n, int fl)
{
    return do_rn(RN_LINKAT, od, o, nd, n, (unsigned)fl);
}

enum { UL_UNLINK, UL_UNLINKAT, UL_RMDIR };

static int call_ul(int kind, int dfd, const char *p, int fl)
{
    switch (kind) {
    case UL_UNLINK:
        return REAL(unlink)(p);
    case UL_UNLINKAT:
        return REAL(unlinkat)(dfd, p, fl);
    default:
        return REAL(rmdir)(p);
    }
}

static int do_ul(int kind, int dfd, const char *p, int fl)
{
    if (t_in)
        return call_ul(kind, dfd, p, fl);
    ensure_init();
    if (!g_enabled)
        return call_ul(kind, dfd, p, fl);
    t_in = 1;
    char rp[PATH_MAX];
    int ok = resolve_at(dfd, p, rp) == 0 && under_root(rp);
    if (ok) {
        int e = fault_path(OP_UNLINK, rp, NULL);
        if (e > 0) {
            t_in = 0;
            errno = e;
            return -1;
        }
    }
    int r = call_ul(kind, dfd, p, fl);
    int saved = errno;
    if (r == 0 && ok)
        log_path(kind == UL_RMDIR || (fl & AT_REMOVEDIR) ? "rmdir" : "unlink", rp, NULL);
    t_in = 0;
    errno = saved;
    return r;
}

EXPORT int unlink(const char *p)
{
    return do_ul(UL_UNLINK, AT_FDCWD, p, 0);
}

EXPORT int unlinkat(int dfd, const char *p, int fl)
{
    return do_ul(UL_UNLINKAT, dfd, p, fl);
}

EXPORT int rmdir(const char *p)
{
    return do_ul(UL_RMDIR, AT_FDCWD, p, 0);
}

static int do_mkdir(int dfd, const char *p, mode_t mode, int at)
{
    if (t_in)
        return at ? REAL(mkdirat)(dfd, p, mode) : REAL(mkdir)(p, mode);
    ensure_init();
    if (!g_enabled)
        return at ? REAL(mkdirat)(dfd, p, mode) : REAL(mkdir)(p, mode);
    t_in = 1;
    char rp[PATH_MAX];
    int ok = resolve_at(dfd, p, rp) == 0 && under_root(rp);
    if (ok) {
        int e = fault_path(OP_MKDIR, rp, NULL);
        if (e > 0) {
            t_in = 0;
            errno = e;
            return -1;
        }
    }
    int r = at ? REAL(mkdirat)(dfd, p, mode) : REAL(mkdir)(p, mode);
    int saved = errno;
    struct stat st;
    if (r == 0 && !ok && resolve_at(dfd, p, rp) == 0 && under_root(rp))
        ok = 1; /* it may be the root itself */
    if (r == 0 && ok && fstatat(dfd, p, &st, AT_SYMLINK_NOFOLLOW) == 0)
        log_ino("mkdir", &st, 0, 0, rp);
    t_in = 0;
    errno = saved;
    return r;
}

EXPORT int mkdir(const char *p, mode_t mode)
{
    return do_mkdir(AT_FDCWD, p, mode, 0);
}

EXPORT int mkdirat(int dfd, const char *p, mode_t mode)
{
    return do_mkdir(dfd, p, mode, 1);
}
