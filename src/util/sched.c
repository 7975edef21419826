/*
 * util/sched.c - a thread's CPU priority (sched.h).
 */
#include "util/sched.h"

#include <sched.h>

int kr_sched_idle(pthread_t t)
{
    struct sched_param sp = {.sched_priority = 0}; /* the only value SCHED_IDLE takes */
    return pthread_setschedparam(t, SCHED_IDLE, &sp);
}
