/*
 * util/retry.c - when to try a failing job again, and when to say so (see
 * retry.h).
 */
#include "util/retry.h"

#include <stdio.h>
#include <string.h>

void kr_retry_init(kr_retry *r, uint64_t base_ms, uint64_t cap_ms)
{
    memset(r, 0, sizeof *r);
    r->base_ms = base_ms > 0 ? base_ms : 1; /* doubling 0 would never reach the cap */
    r->cap_ms = cap_ms < r->base_ms ? r->base_ms : cap_ms;
}

bool kr_retry_due(const kr_retry *r, uint64_t now)
{
    return r->failures == 0 || now + r->base_ms / 2 >= r->next_ms;
}

uint64_t kr_retry_delay(const kr_retry *r)
{
    if (r->failures == 0)
        return 0;
    uint64_t d = r->base_ms;
    for (uint32_t i = 1; i < r->failures && d < r->cap_ms; i++)
        d *= 2;
    return d < r->cap_ms ? d : r->cap_ms;
}

bool kr_retry_failed(kr_retry *r, uint64_t now, const char *reason, uint32_t *unsaid)
{
    if (r->failures < UINT32_MAX)
        r->failures++;
    r->next_ms = now + kr_retry_delay(r);
    bool say = r->failures == 1 || strncmp(r->reason, reason, sizeof r->reason - 1) != 0 ||
               now - r->logged_ms >= KR_RETRY_REMIND_MS;
    if (!say) {
        r->unsaid++;
        return false;
    }
    *unsaid = r->unsaid;
    r->unsaid = 0;
    r->logged_ms = now;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    return true;
}

void kr_retry_now(kr_retry *r)
{
    r->next_ms = 0;
}

uint32_t kr_retry_succeeded(kr_retry *r)
{
    uint32_t n = r->failures;
    r->failures = 0;
    r->next_ms = 0;
    r->unsaid = 0;
    r->reason[0] = '\0';
    return n;
}
