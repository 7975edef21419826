/*
 * tests/shim/shimtest.c - a scriptable driver for test_shim.sh: runs the
 * steps given as arguments, printing one result line per step, e.g.
 *   shimtest open F write 100 fdatasync write 50 kill
 * Steps:
 *   open PATH          open(O_CREAT|O_RDWR|O_CLOEXEC, 0644), becomes current
 *   openat DIR NAME    openat(dirfd, NAME, O_CREAT|O_RDWR) via an O_DIRECTORY fd
 *   append PATH        open(O_CREAT|O_WRONLY|O_APPEND)
 *   fopen PATH         fopen(PATH, "w") (stdio; fsync of fileno works)
 *   write N | pwrite N OFF | writev N | pwritev N OFF   N bytes of 'a'..'z'
 *   fsync | fdatasync | srange (sync_file_range WAIT_BEFORE|WRITE|WAIT_AFTER)
 *   ftruncate N | fallocate N | close | dup2 FD
 *   mkdir D | dirsync D | odirsync D (fsync(dirfd(opendir(D))))
 *   rename A B | renameat DIR A B | unlink P
 *   setfaults TEXT     write TEXT (';' separates lines) to $KRAPPY_SHIM_FAULTS
 *                      through a temp file and rename
 *   threads N ROOT K   N threads, each creates ROOT/tN and does K x
 *                      (write 512, fdatasync); prints "threads ok"
 *   waitfor PATH       wait (at most 20 s) until PATH exists
 *   kill               SIGKILL itself
 * Result lines: "<step> -> <return value>" or "<step> -> -1 <ERRNO NAME>".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *ename(int e)
{
    switch (e) {
    case ENOSPC:
        return "ENOSPC";
    case EIO:
        return "EIO";
    case EDQUOT:
        return "EDQUOT";
    case ENOENT:
        return "ENOENT";
    case EROFS:
        return "EROFS";
    default:
        return strerror(e);
    }
}

static void report(const char *step, long r)
{
    if (r < 0)
        printf("%s -> -1 %s\n", step, ename(errno));
    else
        printf("%s -> %ld\n", step, r);
    fflush(stdout);
}

static char g_buf[1 << 20];

struct targ {
    char path[4096];
    int k;
    int ok;
};

static void *thread_main(void *p)
{
    struct targ *a = p;
    int fd = open(a->path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return NULL;
    int ok = 1;
    for (int i = 0; i < a->k; i++) {
        if (write(fd, g_buf, 512) != 512 || fdatasync(fd) != 0)
            ok = 0;
    }
    close(fd);
    a->ok = ok;
    return NULL;
}

int main(int argc, char **argv)
{
    for (size_t i = 0; i < sizeof g_buf; i++)
        g_buf[i] = (char)('a' + i % 26);
    int fd = -1;
    FILE *fp = NULL;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        char step[256];
        long r;
#define ARG(k) (i + (k) < argc ? argv[i + (k)] : (fprintf(stderr, "missing arg\n"), exit(2), ""))
        if (!strcmp(s, "open")) {
            fd = open(ARG(1), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
            report("open", fd);
            i++;
        } else if (!strcmp(s, "openat")) {
            int d = open(ARG(1), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            fd = openat(d, ARG(2), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
            report("openat", fd);
            close(d);
            i += 2;
        } else if (!strcmp(s, "append")) {
            fd = open(ARG(1), O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
            report("append", fd);
            i++;
        } else if (!strcmp(s, "fopen")) {
            fp = fopen(ARG(1), "w");
            fd = fp ? fileno(fp) : -1;
            report("fopen", fd);
            i++;
        } else if (!strcmp(s, "write")) {
            size_t n = strtoul(ARG(1), NULL, 10);
            r = fp ? (long)fwrite(g_buf, 1, n, fp) : write(fd, g_buf, n);
            if (fp)
                fflush(fp);
            snprintf(step, sizeof step, "write %zu", n);
            report(step, r);
            i++;
        } else if (!strcmp(s, "pwrite")) {
            size_t n = strtoul(ARG(1), NULL, 10);
            off_t off = strtol(ARG(2), NULL, 10);
            r = pwrite(fd, g_buf, n, off);
            snprintf(step, sizeof step, "pwrite %zu", n);
            report(step, r);
            i += 2;
        } else if (!strcmp(s, "writev") || !strcmp(s, "pwritev")) {
            size_t n = strtoul(ARG(1), NULL, 10);
            struct iovec v[3] = {
                {g_buf, n / 3}, {g_buf + n / 3, n / 3}, {g_buf + 2 * (n / 3), n - 2 * (n / 3)}};
            if (s[0] == 'p') {
                r = pwritev(fd, v, 3, strtol(ARG(2), NULL, 10));
                i++;
            } else {
                r = writev(fd, v, 3);
            }
            snprintf(step, sizeof step, "%s %zu", s, n);
            report(step, r);
            i++;
        } else if (!strcmp(s, "fsync")) {
            report("fsync", fsync(fd));
        } else if (!strcmp(s, "fdatasync")) {
            report("fdatasync", fdatasync(fd));
        } else if (!strcmp(s, "srange")) {
            report("srange", sync_file_range(fd, 0, 0,
                                             SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                                 SYNC_FILE_RANGE_WAIT_AFTER));
        } else if (!strcmp(s, "ftruncate")) {
            report("ftruncate", ftruncate(fd, strtol(ARG(1), NULL, 10)));
            i++;
        } else if (!strcmp(s, "fallocate")) {
            report("fallocate", fallocate(fd, 0, 0, strtol(ARG(1), NULL, 10)));
            i++;
        } else if (!strcmp(s, "close")) {
            if (fp) {
                r = fclose(fp);
                fp = NULL;
            } else {
                r = close(fd);
            }
            report("close", r);
            fd = -1;
        } else if (!strcmp(s, "dup2")) {
            int to = atoi(ARG(1));
            report("dup2", dup2(fd, to));
            fd = to;
            i++;
        } else if (!strcmp(s, "mkdir")) {
            report("mkdir", mkdir(ARG(1), 0755));
            i++;
        } else if (!strcmp(s, "dirsync")) {
            int d = open(ARG(1), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            r = d < 0 ? -1 : fsync(d);
            report("dirsync", r);
            if (d >= 0)
                close(d);
            i++;
        } else if (!strcmp(s, "odirsync")) {
            DIR *d = opendir(ARG(1));
            r = d ? fsync(dirfd(d)) : -1;
            report("odirsync", r);
            if (d)
                closedir(d);
            i++;
        } else if (!strcmp(s, "rename")) {
            report("rename", rename(ARG(1), ARG(2)));
            i += 2;
        } else if (!strcmp(s, "renameat")) {
            int d = open(ARG(1), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            report("renameat", renameat(d, ARG(2), d, ARG(3)));
            close(d);
            i += 3;
        } else if (!strcmp(s, "unlink")) {
            report("unlink", unlink(ARG(1)));
            i++;
        } else if (!strcmp(s, "setfaults")) {
            const char *f = getenv("KRAPPY_SHIM_FAULTS");
            char tmp[4096];
            snprintf(tmp, sizeof tmp, "%s.tmp", f);
            FILE *o = fopen(tmp, "w");
            for (const char *c = ARG(1); *c; c++)
                fputc(*c == ';' ? '\n' : *c, o);
            fputc('\n', o);
            fclose(o);
            report("setfaults", rename(tmp, f));
            i++;
        } else if (!strcmp(s, "threads")) {
            int n = atoi(ARG(1));
            pthread_t th[64];
            static struct targ a[64];
            if (n > 64)
                n = 64;
            for (int t = 0; t < n; t++) {
                snprintf(a[t].path, sizeof a[t].path, "%s/t%d", ARG(2), t);
                a[t].k = atoi(ARG(3));
                a[t].ok = 0;
                pthread_create(&th[t], NULL, thread_main, &a[t]);
            }
            int ok = 1;
            for (int t = 0; t < n; t++) {
                pthread_join(th[t], NULL);
                ok &= a[t].ok;
            }
            printf("threads %s\n", ok ? "ok" : "FAILED");
            fflush(stdout);
            i += 3;
        } else if (!strcmp(s, "waitfor")) {
            struct stat st;
            int n = 0;
            while (stat(ARG(1), &st) < 0 && n++ < 2000)
                usleep(10000);
            report("waitfor", n > 2000 ? -1 : 0);
            i++;
        } else if (!strcmp(s, "kill")) {
            fflush(stdout);
            kill(getpid(), SIGKILL);
        } else {
            fprintf(stderr, "unknown step %s\n", s);
            return 2;
        }
    }
    return 0;
}
