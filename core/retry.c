/*
 * retry.c — backoff ceilings, full jitter and sleeping for the router.
 *
 * Full jitter (a uniform wait below the exponential ceiling) spreads the
 * retries of many callers hit by the same outage, so they do not all come
 * back at once.  The generator is a per-thread xorshift: no lock, and no
 * use of rand(), whose state the application owns.
 */
#include "retry.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <time.h>

uint64_t retry_ceiling_ms(const profile_retry *policy, uint32_t n)
{
    if (n < 1)
        n = 1;
    double ceiling = (double)policy->initial_interval_ms * pow(policy->backoff_coefficient, n - 1);
    if (!(ceiling < (double)policy->max_interval_ms)) /* also catches inf */
        return policy->max_interval_ms;
    return (uint64_t)ceiling;
}

static uint64_t retry_random(void)
{
    static _Thread_local uint64_t state;
    if (state == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
                (uint64_t)(uintptr_t)&state ^ (uint64_t)pthread_self();
        if (state == 0)
            state = 0x9e3779b97f4a7c15u;
    }
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

uint64_t retry_jitter_ms(const profile_retry *policy, uint32_t n)
{
    uint64_t ceiling = retry_ceiling_ms(policy, n);
    return retry_random() % (ceiling + 1);
}

void retry_sleep_ms(uint64_t ms)
{
    struct timespec left = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
}

bool retry_worth(int32_t rc, bool idempotent)
{
    return rc == PERSISTOR_E_RETRY || (rc == PERSISTOR_E_UNCERTAIN && idempotent);
}
