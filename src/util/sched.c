/*
 * util/sched.c - a thread's CPU priority (sched.h).
 */
#include "util/sched.h"

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int kr_sched_idle(pthread_t t)
{
    struct sched_param sp = {.sched_priority = 0}; /* the only value SCHED_IDLE takes */
    return pthread_setschedparam(t, SCHED_IDLE, &sp);
}

/* sched_setattr(2)'s argument (glibc has no wrapper before 2.41). */
typedef struct sched_attr_v1 {
    uint32_t size;
    uint32_t policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime; /* SCHED_OTHER: the slice asked for (0: the default) */
    uint64_t deadline;
    uint64_t period;
    uint32_t util_min;
    uint32_t util_max;
} sched_attr_v1;

int kr_sched_short_slices(void)
{
    sched_attr_v1 a;
    memset(&a, 0, sizeof a);
    if (syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) < 0)
        return errno;
    if (a.policy != SCHED_OTHER)
        return 0;
    int nice = a.nice; /* kept: the same value needs no privilege */
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.policy = SCHED_OTHER;
    a.nice = nice;
    a.runtime = KR_SCHED_SLICE_NS;
    return syscall(SYS_sched_setattr, 0, &a, 0) < 0 ? errno : 0;
}
