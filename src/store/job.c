/*
 * store/job.c - storage jobs: allocation, release, failure (see job.h).
 */
#include "store/job.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store_int.h"
#include "store/store_producers.h"

/* Failure sentences are cut here (they end up in ERROR frames and logs). */
#define JOB_MSG_MAX 256

kr_job *kr_job_new(kr_job_kind kind, kr_topic *t)
{
    kr_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    j->kind = kind;
    j->t = t;
    if (kind == KR_JOB_CREATE)
        j->create.wfd = -1;
    return j;
}

void kr_job_free(kr_job *j)
{
    if (j == NULL)
        return;
    switch (j->kind) {
    case KR_JOB_SYNC:
        for (size_t i = 0; i < j->sync.n; i++)
            kr_index_free(&j->sync.segs[i].idx);
        free(j->sync.segs);
        break;
    case KR_JOB_CREATE:
        kr_segment_free(j->create.seg);
        if (j->create.wfile != NULL) {
            kr_fdfile_put(j->create.wfile);
            kr_fdfile_free(j->create.wfile);
        }
        break;
    case KR_JOB_CHECKPOINT:
        for (size_t i = 0; i < j->checkpoint.n; i++)
            kr_prod_ckpt_free(j->checkpoint.ck[i].prod);
        free(j->checkpoint.ck);
        for (size_t i = 0; i < j->checkpoint.n_dispose; i++)
            kr_overlay_free(j->checkpoint.dispose[i]);
        free(j->checkpoint.dispose);
        break;
    case KR_JOB_LOGGED:
        kr_view_batch_free(j->logged.batch);
        break;
    case KR_JOB_DELETE:
        for (size_t i = 0; i < j->del.n; i++)
            free(j->del.paths[i]);
        free(j->del.paths);
        break;
    case KR_JOB_CURSOR:
        free(j->cursor.koffset);
        break;
    case KR_JOB_TOPIC_DROP:
        break;
    }
    free(j->msg);
    free(j);
}

const char *kr_errno_advice(int err)
{
    switch (err) {
    case ENOSPC:
    case EDQUOT:
        return "the disk is full; free space and retry";
    case EIO:
        return "an I/O error on the disk; check the device";
    case EROFS:
        return "the file system is read-only";
    default:
        return strerror(err);
    }
}

void kr_job_fail(kr_job *j, int err, const char *fmt, ...)
{
    char text[JOB_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (err != 0 && n >= 0 && (size_t)n < sizeof text)
        snprintf(text + n, sizeof text - (size_t)n, ": %s", kr_errno_advice(err));
    free(j->msg);
    j->msg = strdup(text); /* NULL: kr_job_msg still has a sentence */
    j->err = KRAPPY_E_STORAGE;
}

const char *kr_job_msg(const kr_job *j)
{
    if (j->err == KRAPPY_OK)
        return "";
    return j->msg != NULL ? j->msg
                          : "a storage operation failed, and there was no memory left to say why";
}
