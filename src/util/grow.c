/*
 * util/grow.c - a doubling array's room for one more element (grow.h).
 */
#include "util/grow.h"

#include <stdint.h>
#include <stdlib.h>

void *kr_grow(void *arr, size_t n, size_t *cap, size_t elem, size_t first)
{
    if (n < *cap)
        return arr;
    size_t c = *cap ? *cap * 2 : first;
    if (c < *cap || elem == 0 || c > SIZE_MAX / elem)
        return NULL;
    void *p = realloc(arr, c * elem);
    if (p != NULL)
        *cap = c;
    return p;
}
