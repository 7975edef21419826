/*
 * util/sched.h - a thread's CPU priority: background threads (compaction,
 * checkpoints) step aside for the loop.
 */
#ifndef KR_UTIL_SCHED_H
#define KR_UTIL_SCHED_H

#include <pthread.h>

/* Put thread `t` under SCHED_IDLE: the kernel then gives it a core only
 * when no normal thread wants one, instead of a fair share of it. It still
 * runs on an idle core, and on a busy machine it gets a sliver (the weight
 * of nice 20), so its work is delayed, never stopped. Lowering is always
 * allowed; raising it back needs CAP_SYS_NICE. Returns 0, or an errno value
 * (the thread keeps its policy then). */
int kr_sched_idle(pthread_t t);

#endif
