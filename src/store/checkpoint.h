/*
 * store/checkpoint.h - the RocksDB half of a checkpoint (internal to
 * src/store; run by the storage writer's view thread once the streams it
 * covers are synced): the frozen overlays of some topics folded into the
 * view, with each topic's marker "the view holds offsets < next".
 */
#ifndef KR_STORE_CHECKPOINT_H
#define KR_STORE_CHECKPOINT_H

#include <stddef.h>

#include "store/job.h"
#include "store/overlay.h"
#include "store/view.h"

/*
 * kr_checkpoint_write - write the checkpoint of n topics into v as one
 * table file ingested at once (kr_view_ckpt: atomic and durable), every
 * topic's keys first, then every marker, then every topic's producer
 * states (ck[i].prod), each in key order. Reads each
 * ck[i].ov (frozen, read-only meanwhile) and the view, to count live keys;
 * sorts ck by topic key order and sets each ck[i].keys to the count after.
 * Sorts each overlay in mem (kept by a caller that checkpoints often, see
 * kr_ov_sortmem; NULL: memory of its own, freed before it returns).
 * @return 0; or -1 with err saying which topic and why, nothing of the
 *         checkpoint being in the view then; -2 the same, when RocksDB
 *         itself refused it (reopen the view: kr_view_ckpt_commit).
 */
int kr_checkpoint_write(kr_view *v, kr_ckpt_topic *ck, size_t n, kr_ov_sortmem *mem, char *err,
                        size_t errlen);

#endif
