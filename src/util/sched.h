/*
 * util/sched.h - a thread's CPU priority: background threads (compaction,
 * checkpoints) step aside for the loop.
 */
#ifndef KR_UTIL_SCHED_H
#define KR_UTIL_SCHED_H

#include <pthread.h>
#include <stdint.h>

/* Put thread `t` under SCHED_IDLE: the kernel then gives it a core only
 * when no normal thread wants one, instead of a fair share of it. It still
 * runs on an idle core, and on a busy machine it gets a sliver (the weight
 * of nice 20), so its work is delayed, never stopped. Lowering is always
 * allowed; raising it back needs CAP_SYS_NICE. Returns 0, or an errno value
 * (the thread keeps its policy then). */
int kr_sched_idle(pthread_t t);

/* Let a thread queued on the caller's core run now, if one is (else it
 * returns at once). A thread under SCHED_IDLE that the scheduler picked
 * keeps its core to the end of its time slice, up to a timer tick, even
 * with a normal thread queued behind it (the scheduler gives it a sliver,
 * not nothing); a background loop calls this between small steps of
 * work so that such a wait lasts one step at most. */
void kr_sched_step_aside(void);

/* Work a background thread does between two steps aside when it paces
 * itself (kr_sched_pace): short enough that a loop queued behind it waits
 * no longer than a loop turn, long enough that the steps cost nothing. */
#define KR_SCHED_QUANTUM_NS 100000u

/* A background thread's pace: when it last stepped aside, and how often. */
typedef struct kr_sched_pacer {
    uint64_t last_ns; /* 0: not yet */
    uint64_t steps;   /* steps aside taken */
} kr_sched_pacer;

/* Step aside (kr_sched_step_aside) if KR_SCHED_QUANTUM_NS of the clock have
 * passed since the last step, for long work on a thread at normal priority
 * that must not hold a core a whole time slice while the loop, or a client
 * sharing the machine, is queued behind it. Called every few microseconds
 * of work; costs a clock read. */
void kr_sched_pace(kr_sched_pacer *p);

#endif
