/*
 * util/sched.h - a thread's CPU priority: background threads (compaction,
 * checkpoints) step aside for the loop; threads that wake often for a
 * moment of work (a cluster's loop and raft thread) ask to run soon.
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

#define KR_SCHED_SLICE_NS 100000u /* kr_sched_short_slices: the kernel's least */

/* Ask for short time slices (KR_SCHED_SLICE_NS) for the calling thread and
 * the threads it starts afterwards (they inherit them). Linux 6.12+ (EEVDF
 * custom slices) honours it unprivileged: a thread that wakes for a moment
 * of work then gets a core ahead of CPU-bound threads instead of queueing
 * behind their slices (3 ms and more each). Its share of the CPU stays the
 * same. Older kernels accept it and change nothing. A thread not under
 * SCHED_OTHER (kr_sched_idle's) is left as it is. Returns 0, or an errno
 * value (nothing changed). */
int kr_sched_short_slices(void);

#endif
