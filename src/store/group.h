/*
 * store/group.h - consumer groups: a named cursor on a topic shared by its
 * members (PROTOCOL.md section 4), as pure in-memory logic.
 *
 * The window of a group is the offsets [cursor, frontier): the cursor is the
 * lowest offset not yet acknowledged, the frontier the lowest never handed
 * out. Every offset of the window is in one state - pending for a member,
 * awaiting redelivery, or acknowledged - kept as a sorted list of runs of
 * consecutive offsets in the same state, so a batch of 1000 handed out to
 * one member is one run with one deadline, whatever its size. The window is
 * bounded (max_window): a POLL hands out fewer events when it is full, so a
 * stuck event cannot grow memory without limit.
 *
 * No I/O here: store.c persists cursors through the storage writer and
 * fetches the events; this module only decides which offsets go where.
 * Loop thread only.
 */
#ifndef KR_STORE_GROUP_H
#define KR_STORE_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "krappy/protocol.h"

/* Offsets handed out but not acknowledged, per group, at most (default). */
#define KR_GROUP_DEFAULT_WINDOW 100000

typedef struct kr_group kr_group;
typedef struct kr_member kr_member;

typedef enum kr_run_state {
    KR_RUN_PENDING = 0, /* handed to `member`, deadline running */
    KR_RUN_REDELIVER,   /* back to the group, to be handed out again */
    KR_RUN_ACKED
} kr_run_state;

/* A run of consecutive offsets [first, next) in one state. */
typedef struct kr_run {
    uint64_t first, next;
    kr_run_state state;
    kr_member *member;    /* PENDING */
    uint64_t deadline_ms; /* PENDING: back to the group after this */
    uint32_t deliveries;  /* times handed out so far */
} kr_run;

struct kr_member {
    kr_group *group;
    char name[KRAPPY_MAX_NAME_BYTES + 1];
    size_t name_len;
    bool auto_ack;
    uint64_t ack_wait_ms;
    void *owner; /* the connection holding it (NULL when none) */
    TAILQ_ENTRY(kr_member) link;
};

TAILQ_HEAD(kr_member_list, kr_member);

struct kr_group {
    char name[KRAPPY_MAX_NAME_BYTES + 1];
    size_t name_len;
    uint64_t cursor;     /* lowest offset not acknowledged */
    uint64_t frontier;   /* lowest offset never handed out */
    uint64_t durable;    /* the cursor as last persisted */
    uint64_t origin;     /* where the group started: nothing below was ever
                            handed out by it (ACKs of such offsets are refused) */
    uint64_t max_window; /* frontier - cursor at most */
    kr_run *runs;        /* sorted, covering exactly [cursor, frontier) */
    size_t n_runs, cap_runs;
    struct kr_member_list members;
    size_t n_members;
    uint64_t redeliveries; /* offsets handed out again, ever */
    uint64_t skipped;      /* offsets skipped because retention removed them */
    uint64_t member_seq;   /* for generated member names */
    uint64_t forgotten;    /* the highest frontier a GROUP_SEEK left behind:
                              offsets below it outside the window were handed
                              out before the seek, and ACKs of them are
                              ignored rather than refused */
    void *ctx;             /* the store's state of this group */
};

/* A new group at `cursor` (frontier = cursor). @return NULL on ENOMEM. */
kr_group *kr_group_new(const uint8_t *name, size_t len, uint64_t cursor, uint64_t max_window);
void kr_group_free(kr_group *g); /* members too; NULL ok */

/*
 * kr_group_join - add a member (name NULL: a unique one is made up).
 * A name held by another member is taken over: that member's pending
 * events and deadlines move to the new one (*taken_from is set to the old
 * owner, who loses its registration).
 * @return the member, or NULL on ENOMEM.
 */
kr_member *kr_group_join(kr_group *g, const uint8_t *name, size_t len, bool auto_ack,
                         uint64_t ack_wait_ms, void *owner, void **taken_from);

/* A member leaves (disconnect or rebind): its pending events go back to the
 * group for redelivery. The member is freed. @return offsets returned. */
uint64_t kr_group_leave(kr_group *g, kr_member *m);

/* One slice of what a POLL hands out: offsets [first, next). */
typedef struct kr_grant {
    uint64_t first, next;
    bool redelivery;
} kr_grant;

/*
 * kr_group_take - choose what POLL hands to member m: redeliveries first
 * (oldest first), then new offsets from the frontier up to `end` (the
 * topic's next), at most `max` offsets and within the window; at most
 * `max_grants` slices written to out. Nothing changes yet: the caller
 * fetches the events (maybe fewer fit max_bytes) and then commits with
 * kr_group_hand_out for each slice it really sends. The memory those
 * hand-outs need is taken here.
 * @return slices written; 0 also when that memory cannot be had (the group
 *         is unchanged, and the POLL hands out nothing this time).
 */
size_t kr_group_take(kr_group *g, uint64_t end, uint64_t max, kr_grant *out, size_t max_grants);

/*
 * kr_group_hand_out - record that offsets [first, next) were sent to m:
 * pending with a deadline now_ms + ack_wait_ms (explicit), or acknowledged
 * at once (auto). The frontier moves past new offsets. It allocates
 * nothing (and so cannot fail) for a part of a slice of the last
 * kr_group_take.
 */
void kr_group_hand_out(kr_group *g, kr_member *m, uint64_t first, uint64_t next, uint64_t now_ms);

/*
 * kr_group_hand_out_gap - offsets [first, next) of a slice hold no event
 * (compaction removed them): they count as handed out and acknowledged at
 * once, so that the cursor moves over them. A slice cut by gaps takes a
 * few more runs than kr_group_take reserved: on ENOMEM the offsets stay
 * where they were (handed out again by a later POLL).
 */
void kr_group_hand_out_gap(kr_group *g, uint64_t first, uint64_t next);

/* What an ACK did. */
typedef struct kr_ack_result {
    krappy_err err;      /* OK, or INVALID_ARGUMENT or STORAGE (out of
                            memory): nothing applied */
    uint64_t bad_offset; /* INVALID_ARGUMENT: an offset never handed out */
    uint64_t *ignored;   /* offsets already acknowledged (malloc'd; free) */
    size_t n_ignored;
    uint64_t acked; /* offsets newly acknowledged */
} kr_ack_result;

/* ACK upto: m's pending offsets below `upto` are acknowledged. */
void kr_group_ack_upto(kr_group *g, kr_member *m, uint64_t upto, kr_ack_result *res);

/* ACK offsets: each is acknowledged if pending for anyone or awaiting
 * redelivery; one never handed out refuses the whole ACK; one already
 * acknowledged is listed (once) in `ignored`. */
void kr_group_ack_offsets(kr_group *g, const uint64_t *offsets, size_t n, kr_ack_result *res);

/* Pending runs whose deadline passed go back to the group.
 * @return offsets returned; *next_deadline_ms gets the earliest deadline
 *         still running (UINT64_MAX when none). */
uint64_t kr_group_expire(kr_group *g, uint64_t now_ms, uint64_t *next_deadline_ms);

/* Retention removed offsets below `first`: move the cursor (and frontier)
 * up to it. @return offsets skipped that were not acknowledged. */
uint64_t kr_group_skip_to(kr_group *g, uint64_t first);

/*
 * kr_group_seek - GROUP_SEEK: forget every hand-out (pending and awaiting
 * redelivery) and put the cursor and the frontier at `to`. Members stay;
 * their next POLL hands out from `to`. ACKs of offsets handed out before
 * are ignored (listed in `ignored`), not refused. Allocates nothing.
 * @return the offsets forgotten that were not acknowledged.
 */
uint64_t kr_group_seek(kr_group *g, uint64_t to);

/* Offsets pending for member m. */
uint64_t kr_group_member_pending(const kr_group *g, const kr_member *m);

/* Offsets pending or awaiting redelivery. */
uint64_t kr_group_pending(const kr_group *g);

/* 1 when there is something to redeliver. */
bool kr_group_has_redelivery(const kr_group *g);

/* The largest delivery count of any offset in the window (for metrics). */
uint32_t kr_group_max_deliveries(const kr_group *g);

/* Find a member by name, or NULL. */
kr_member *kr_group_member(kr_group *g, const uint8_t *name, size_t len);

#endif
