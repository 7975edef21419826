/*
 * store/index.c - sparse offset indexes of segments, in memory and as
 * BASE.idx files (see index.h for the format).
 */
#include "store/index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/byteorder.h"
#include "util/crc32c.h"
#include "util/io.h"

#define INDEX_MAGIC     "KRAPPYIX"
#define INDEX_CRC_AT    44
#define INDEX_FIRST_CAP 64

/* ---- in memory ---- */

void kr_index_add(kr_index *ix, uint64_t offset, uint64_t pos)
{
    if (ix->n > 0 && pos - ix->e[ix->n - 1].pos < KR_INDEX_INTERVAL)
        return;
    if (ix->n == ix->cap) {
        size_t cap = ix->cap ? ix->cap * 2 : INDEX_FIRST_CAP;
        kr_index_entry *e = realloc(ix->e, cap * sizeof *e);
        if (e == NULL)
            return; /* a hint: missing entries only cost a longer walk */
        ix->e = e;
        ix->cap = cap;
    }
    ix->e[ix->n].offset = offset;
    ix->e[ix->n].pos = pos;
    ix->n++;
}

uint64_t kr_index_find(const kr_index *ix, uint64_t offset)
{
    size_t lo = 0, hi = ix->n;
    uint64_t pos = KR_SEG_HEADER_BYTES;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ix->e[mid].offset <= offset) {
            pos = ix->e[mid].pos;
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return pos;
}

void kr_index_cut(kr_index *ix, uint64_t pos)
{
    while (ix->n > 0 && ix->e[ix->n - 1].pos >= pos)
        ix->n--;
}

int kr_index_copy(kr_index *dst, const kr_index *src)
{
    kr_index_entry *e = NULL;
    if (src->n > 0) {
        e = malloc(src->n * sizeof *e);
        if (e == NULL)
            return -1;
        memcpy(e, src->e, src->n * sizeof *e);
    }
    free(dst->e);
    dst->e = e;
    dst->n = dst->cap = src->n;
    return 0;
}

void kr_index_free(kr_index *ix)
{
    if (ix == NULL)
        return;
    free(ix->e);
    ix->e = NULL;
    ix->n = ix->cap = 0;
}

/* ---- BASE.idx ---- */

void kr_index_file_name(char out[KR_INDEX_NAME_BYTES], uint64_t base)
{
    kr_seg_name(out, base);
    memcpy(out + KR_SEG_NAME_BYTES - 5, ".idx", 5);
}

size_t kr_index_encoded_len(size_t n)
{
    return KR_INDEX_HEADER_BYTES + n * KR_INDEX_ENTRY_BYTES;
}

void kr_index_encode(uint8_t *buf, uint64_t base, const kr_index_meta *meta, uint64_t size,
                     const kr_index *ix)
{
    size_t len = kr_index_encoded_len(ix->n);
    memcpy(buf, INDEX_MAGIC, 8);
    kr_put_be64(buf + 8, base);
    kr_put_be64(buf + 16, meta->next);
    kr_put_be64(buf + 24, size);
    kr_put_be64(buf + 32, meta->max_ts);
    kr_put_be32(buf + 40, (uint32_t)ix->n);
    kr_put_be32(buf + INDEX_CRC_AT, 0);
    for (size_t i = 0; i < ix->n; i++) {
        uint8_t *p = buf + KR_INDEX_HEADER_BYTES + i * KR_INDEX_ENTRY_BYTES;
        kr_put_be64(p, ix->e[i].offset);
        kr_put_be64(p + 8, ix->e[i].pos);
    }
    kr_put_be32(buf + INDEX_CRC_AT, kr_crc32c(0, buf, len));
}

int kr_index_write(int dirfd, uint64_t base, const kr_index_meta *meta, uint64_t size,
                   const kr_index *ix)
{
    char name[KR_INDEX_NAME_BYTES], tmp[KR_INDEX_NAME_BYTES + 8];
    kr_index_file_name(name, base);
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    size_t len = kr_index_encoded_len(ix->n);
    uint8_t *buf = malloc(len);
    if (buf == NULL)
        return -1;
    kr_index_encode(buf, base, meta, size, ix);
    int rc = -1;
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd >= 0) {
        rc = kr_pwrite_all(fd, buf, len, 0);
        int e = errno;
        close(fd);
        if (rc == 0)
            rc = renameat(dirfd, tmp, dirfd, name);
        if (rc < 0) {
            e = errno;
            unlinkat(dirfd, tmp, 0);
            errno = e;
        }
    }
    free(buf);
    return rc;
}

/* Every entry ascending, inside the segment's offsets and bytes. */
static bool entries_sane(const uint8_t *p, uint32_t n, uint64_t base, uint64_t next, uint64_t size)
{
    uint64_t last_off = 0, last_pos = 0;
    for (uint32_t i = 0; i < n; i++, p += KR_INDEX_ENTRY_BYTES) {
        uint64_t off = kr_get_be64(p), pos = kr_get_be64(p + 8);
        if (off < base || off >= next || pos < KR_SEG_HEADER_BYTES || pos >= size)
            return false;
        if (i > 0 && (off <= last_off || pos <= last_pos))
            return false;
        last_off = off;
        last_pos = pos;
    }
    return true;
}

int kr_index_decode(const uint8_t *buf, size_t len, uint64_t base, uint64_t size,
                    kr_index_meta *meta, kr_index *out)
{
    static const uint8_t zero[4];
    if (len < KR_INDEX_HEADER_BYTES || memcmp(buf, INDEX_MAGIC, 8) != 0)
        goto bad;
    uint32_t n = kr_get_be32(buf + 40);
    if ((len - KR_INDEX_HEADER_BYTES) / KR_INDEX_ENTRY_BYTES != n ||
        (len - KR_INDEX_HEADER_BYTES) % KR_INDEX_ENTRY_BYTES != 0)
        goto bad;
    /* The CRC was computed with its own field zero. */
    uint32_t crc = kr_crc32c(0, buf, INDEX_CRC_AT);
    crc = kr_crc32c(crc, zero, sizeof zero);
    crc = kr_crc32c(crc, buf + INDEX_CRC_AT + 4, len - INDEX_CRC_AT - 4);
    if (crc != kr_get_be32(buf + INDEX_CRC_AT))
        goto bad;
    uint64_t next = kr_get_be64(buf + 16);
    if (kr_get_be64(buf + 8) != base || kr_get_be64(buf + 24) != size || next < base ||
        !entries_sane(buf + KR_INDEX_HEADER_BYTES, n, base, next, size))
        goto bad;
    kr_index_entry *e = malloc((n ? n : 1) * sizeof *e);
    if (e == NULL)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p = buf + KR_INDEX_HEADER_BYTES + (size_t)i * KR_INDEX_ENTRY_BYTES;
        e[i].offset = kr_get_be64(p);
        e[i].pos = kr_get_be64(p + 8);
    }
    out->e = e;
    out->n = out->cap = n;
    meta->next = next;
    meta->max_ts = kr_get_be64(buf + 32);
    return 0;
bad:
    errno = EINVAL;
    return -1;
}

int kr_index_load(int dirfd, uint64_t base, uint64_t size, kr_index_meta *meta, kr_index *out)
{
    char name[KR_INDEX_NAME_BYTES];
    kr_index_file_name(name, base);
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    uint8_t *buf = NULL;
    int rc = -1;
    if (fstat(fd, &st) < 0)
        goto out;
    if (st.st_size < KR_INDEX_HEADER_BYTES || (uint64_t)st.st_size > KR_INDEX_MAX_FILE) {
        errno = EINVAL;
        goto out;
    }
    size_t len = (size_t)st.st_size;
    buf = malloc(len);
    if (buf == NULL)
        goto out;
    ssize_t r = pread(fd, buf, len, 0);
    if (r != (ssize_t)len) {
        if (r >= 0)
            errno = EINVAL; /* it shrank under us: torn */
        goto out;
    }
    rc = kr_index_decode(buf, len, base, size, meta, out);
out:
    free(buf);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}
