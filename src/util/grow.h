/*
 * util/grow.h - room for one more element at the end of a plain array that
 * doubles when full (an array of pointers to topics, segments, groups...):
 * the owner keeps the array, its count and its capacity, and asks here
 * before it adds. It knows nothing of krappy.
 */
#ifndef KR_UTIL_GROW_H
#define KR_UTIL_GROW_H

#include <stddef.h>

/* Room for element n of arr (n used of *cap elements of `elem` bytes):
 * arr when n < *cap, else arr reallocated to twice *cap (`first` elements
 * when *cap is 0) with *cap updated. The caller stores the result back.
 * @return the array (moved or not), or NULL when out of memory (or the
 *         size overflows): arr and *cap are then as they were. */
void *kr_grow(void *arr, size_t n, size_t *cap, size_t elem, size_t first);

#endif
