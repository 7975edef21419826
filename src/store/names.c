/*
 * store/names.c - name order and the binary search of name-sorted tables
 * (see names.h).
 */
#include "store/names.h"

#include <string.h>

int kr_name_cmp(const char *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

size_t kr_name_slot(const void *table, size_t n, kr_name_at_fn name_at, const uint8_t *name,
                    size_t len, bool *found)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2, mlen;
        const char *m = name_at(table, mid, &mlen);
        int c = kr_name_cmp(m, mlen, name, len);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}
