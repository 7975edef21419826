/*
 * util/sched.c - a thread's CPU priority (sched.h).
 */
#include "util/sched.h"

#include <sched.h>

#include "util/clock.h"

int kr_sched_idle(pthread_t t)
{
    struct sched_param sp = {.sched_priority = 0}; /* the only value SCHED_IDLE takes */
    return pthread_setschedparam(t, SCHED_IDLE, &sp);
}

void kr_sched_step_aside(void)
{
    (void)sched_yield();
}

void kr_sched_pace(kr_sched_pacer *p)
{
    uint64_t now = kr_mono_ns();
    if (p->last_ns == 0) {
        p->last_ns = now;
        return;
    }
    if (now - p->last_ns < KR_SCHED_QUANTUM_NS)
        return;
    kr_sched_step_aside();
    p->steps++;
    p->last_ns = kr_mono_ns();
}
