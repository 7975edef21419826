/*
 * store/names.h - tables kept in name order (the store's topics, a
 * topic's groups): one comparison and one binary search for all of them.
 */
#ifndef KR_STORE_NAMES_H
#define KR_STORE_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Unsigned bytewise order of two names; a prefix sorts first.
 * @return <0, 0 or >0 as a is before, equal to or after b. */
int kr_name_cmp(const char *a, size_t alen, const uint8_t *b, size_t blen);

/* Entry i of a table: its name and length (borrowed). */
typedef const char *(*kr_name_at_fn)(const void *table, size_t i, size_t *len);

/*
 * kr_name_slot - binary search of a table of n entries sorted by name.
 * @return the index of the entry named `name` (*found true), or where it
 *         would be inserted to keep the order (*found false).
 */
size_t kr_name_slot(const void *table, size_t n, kr_name_at_fn name_at, const uint8_t *name,
                    size_t len, bool *found);

#endif
