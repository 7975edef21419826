/*
 * cluster/trace.c - per-entry stage times for measuring (see trace.h).
 *
 * A ring of records by index, each stage holding the index it was marked
 * for next to its time, so a mark is two relaxed stores from any thread
 * and a record recycled by a later index is told apart stage by stage.
 * Lines go out under one mutex, LAG entries behind the newest applied.
 */
#include "cluster/trace.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/log.h"

#define RING (1u << 16) /* records: far more than entries in flight */
#define LAG  256        /* entries a line waits for its late stages */

typedef struct record {
    uint64_t index[KR_TRACE_STAGES];
    uint64_t ns[KR_TRACE_STAGES];
    uint64_t events_index; /* the index `first` and `count` are of */
    uint64_t first, count;
} record;

typedef struct tracer {
    uint64_t node;
    FILE *f;
    pthread_mutex_t mu;
    uint64_t next_line; /* the next index to write a line for (0: none yet) */
    uint64_t oldest;    /* the first index applied while tracing */
    uint64_t newest;    /* the highest index applied */
    record ring[RING];
} tracer;

static tracer *the; /* atomic: set once by kr_trace_open, cleared by kr_trace_close */

static const char *const names[KR_TRACE_STAGES] = {"submit", "append", "stored", "ack1",
                                                   "ack2",   "commit", "taken",  "applied"};

int kr_trace_on(void)
{
    return __atomic_load_n(&the, __ATOMIC_ACQUIRE) != NULL;
}

void kr_trace_open(uint64_t id)
{
    const char *prefix = getenv("KRAPPY_CLUSTER_TRACE");
    if (prefix == NULL || prefix[0] == '\0' || kr_trace_on())
        return;
    tracer *t = calloc(1, sizeof *t);
    char path[4096];
    snprintf(path, sizeof path, "%s.%llu", prefix, (unsigned long long)id);
    if (t == NULL || (t->f = fopen(path, "w")) == NULL) {
        kr_log(KR_LOG_WARN, "cannot write the cluster trace; tracing stays off",
               KR_LOG_STR("path", path));
        free(t);
        return;
    }
    t->node = id;
    pthread_mutex_init(&t->mu, NULL);
    fprintf(t->f, "# node %llu: index", (unsigned long long)id);
    for (int s = 0; s < KR_TRACE_STAGES; s++)
        fprintf(t->f, " %s", names[s]);
    fprintf(t->f, " (CLOCK_MONOTONIC ns, 0: not seen here) first count\n");
    __atomic_store_n(&the, t, __ATOMIC_RELEASE);
}

/* The line of `index` (under t->mu). */
static void put_line(tracer *t, uint64_t index)
{
    record *r = &t->ring[index % RING];
    fprintf(t->f, "%llu", (unsigned long long)index);
    for (int s = 0; s < KR_TRACE_STAGES; s++) {
        bool mine = __atomic_load_n(&r->index[s], __ATOMIC_ACQUIRE) == index;
        uint64_t ns = mine ? __atomic_load_n(&r->ns[s], __ATOMIC_RELAXED) : 0;
        fprintf(t->f, " %llu", (unsigned long long)ns);
    }
    bool mine = __atomic_load_n(&r->events_index, __ATOMIC_ACQUIRE) == index;
    fprintf(t->f, " %llu %llu\n", mine ? (unsigned long long)r->first : 0ull,
            mine ? (unsigned long long)r->count : 0ull);
}

/* Lines for every index up to `upto` not written yet (under t->mu). */
static void put_lines(tracer *t, uint64_t upto)
{
    /* From the first index applied; where the log went back (a new
     * leader's truncation), from here. Far behind: the ring holds only the
     * newest. */
    if (t->next_line == 0)
        t->next_line = t->oldest;
    if (t->next_line > upto + 1)
        t->next_line = upto;
    if (t->next_line <= upto && upto - t->next_line >= RING / 2)
        t->next_line = upto - RING / 2;
    for (; t->next_line <= upto; t->next_line++)
        put_line(t, t->next_line);
}

void kr_trace_close(uint64_t id)
{
    tracer *t = __atomic_load_n(&the, __ATOMIC_ACQUIRE);
    if (t == NULL || t->node != id)
        return;
    __atomic_store_n(&the, NULL, __ATOMIC_RELEASE);
    pthread_mutex_lock(&t->mu);
    if (t->newest > 0)
        put_lines(t, t->newest);
    fclose(t->f);
    pthread_mutex_unlock(&t->mu);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

void kr_trace_mark_at(kr_trace_stage stage, uint64_t index, uint64_t ns)
{
    tracer *t = __atomic_load_n(&the, __ATOMIC_ACQUIRE);
    if (t == NULL || index == 0)
        return;
    record *r = &t->ring[index % RING];
    /* The first mark of a stage stands; a second acknowledgement is the
     * other follower's. */
    if (__atomic_load_n(&r->index[stage], __ATOMIC_ACQUIRE) == index) {
        if (stage != KR_TRACE_ACK1)
            return;
        stage = KR_TRACE_ACK2;
        if (__atomic_load_n(&r->index[stage], __ATOMIC_ACQUIRE) == index)
            return;
    }
    __atomic_store_n(&r->ns[stage], ns, __ATOMIC_RELAXED);
    __atomic_store_n(&r->index[stage], index, __ATOMIC_RELEASE);
    if (stage != KR_TRACE_APPLIED)
        return;
    pthread_mutex_lock(&t->mu);
    if (t->oldest == 0)
        t->oldest = index;
    if (index > t->newest)
        t->newest = index;
    /* Flushed at once: a node may be killed (the bench's C3 does). */
    if (index > LAG && index - LAG >= t->oldest) {
        put_lines(t, index - LAG);
        fflush(t->f);
    }
    pthread_mutex_unlock(&t->mu);
}

void kr_trace_events(uint64_t index, uint64_t first, uint64_t count)
{
    tracer *t = __atomic_load_n(&the, __ATOMIC_ACQUIRE);
    if (t == NULL || index == 0)
        return;
    record *r = &t->ring[index % RING];
    r->first = first;
    r->count = count;
    __atomic_store_n(&r->events_index, index, __ATOMIC_RELEASE);
}

void kr_trace_mark(kr_trace_stage stage, uint64_t index)
{
    if (kr_trace_on())
        kr_trace_mark_at(stage, index, kr_mono_ns());
}

void kr_trace_note(const char *what, uint64_t start_ns)
{
    tracer *t = __atomic_load_n(&the, __ATOMIC_ACQUIRE);
    if (t == NULL)
        return;
    uint64_t now = kr_mono_ns();
    pthread_mutex_lock(&t->mu);
    fprintf(t->f, "# %s at %llu took %llu us\n", what, (unsigned long long)start_ns,
            (unsigned long long)((now - start_ns) / 1000));
    fflush(t->f);
    pthread_mutex_unlock(&t->mu);
}
