/*
 * breaker.c — the circuit breaker's state and its probe schedule.
 *
 * Probes are spaced like retries (retry.h: the ceiling for attempt n) but
 * without jitter: there is one prober per adapter, so nothing to spread.
 */
#include "breaker.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "retry.h"

int64_t breaker_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void breaker_init(breaker *b)
{
    memset(b, 0, sizeof *b);
    atomic_init(&b->state, BREAKER_CLOSED);
    pthread_mutex_init(&b->lock, NULL);
}

void breaker_destroy(breaker *b)
{
    pthread_mutex_destroy(&b->lock);
}

breaker_state breaker_get(const breaker *b)
{
    return (breaker_state)atomic_load(&((breaker *)b)->state);
}

const char *breaker_state_name(breaker_state state)
{
    switch (state) {
    case BREAKER_CLOSED: return "closed";
    case BREAKER_OPEN: return "open";
    case BREAKER_RECOVERING: return "recovering";
    }
    return "?";
}

bool breaker_trip(breaker *b, const profile_retry *policy, const char *reason)
{
    pthread_mutex_lock(&b->lock);
    int64_t now = breaker_now_ms();
    breaker_state was = breaker_get(b);
    if (was != BREAKER_OPEN) {
        if (was == BREAKER_CLOSED)
            b->opened_at_ms = now;
        b->probes_failed = 0;
        b->next_probe_ms = now + (int64_t)retry_ceiling_ms(policy, 1);
        snprintf(b->reason, sizeof b->reason, "%s", reason);
        atomic_store(&b->state, BREAKER_OPEN);
    }
    pthread_mutex_unlock(&b->lock);
    return was == BREAKER_CLOSED;
}

void breaker_probe_failed(breaker *b, const profile_retry *policy, const char *reason)
{
    pthread_mutex_lock(&b->lock);
    b->probes_failed++;
    b->next_probe_ms = breaker_now_ms() + (int64_t)retry_ceiling_ms(policy, b->probes_failed + 1);
    snprintf(b->reason, sizeof b->reason, "%s", reason);
    atomic_store(&b->state, BREAKER_OPEN);
    pthread_mutex_unlock(&b->lock);
}

bool breaker_probe_due(breaker *b, int64_t now_ms, int64_t *next_ms)
{
    pthread_mutex_lock(&b->lock);
    bool open = breaker_get(b) == BREAKER_OPEN;
    *next_ms = open ? b->next_probe_ms : INT64_MAX;
    pthread_mutex_unlock(&b->lock);
    return open && now_ms >= *next_ms;
}

void breaker_set_recovering(breaker *b)
{
    atomic_store(&b->state, BREAKER_RECOVERING);
}

int64_t breaker_close(breaker *b)
{
    pthread_mutex_lock(&b->lock);
    int64_t was_open = breaker_get(b) == BREAKER_CLOSED ? 0 : breaker_now_ms() - b->opened_at_ms;
    b->probes_failed = 0;
    b->reason[0] = '\0';
    atomic_store(&b->state, BREAKER_CLOSED);
    pthread_mutex_unlock(&b->lock);
    return was_open;
}

void breaker_snapshot(breaker *b, char *reason, size_t cap, int64_t *open_for_ms)
{
    pthread_mutex_lock(&b->lock);
    snprintf(reason, cap, "%s", b->reason);
    *open_for_ms = breaker_get(b) == BREAKER_CLOSED ? 0 : breaker_now_ms() - b->opened_at_ms;
    pthread_mutex_unlock(&b->lock);
}
