/*
 * breaker.h — one adapter's circuit breaker.
 *
 * closed      calls go to the adapter.
 * open        the adapter failed (retries exhausted, or UNAVAILABLE): calls
 *             skip it at once, without waiting on a timeout, and the
 *             router's recovery thread probes it with ping, backing off.
 * recovering  (primary only) the probe answered and the fallbacks' journals
 *             are being replayed into it; calls still skip it, so nothing
 *             reaches it out of order, until the journals are drained.
 *
 * Times are on the monotonic clock.  The state is read without a lock on
 * every call; the rest is guarded by the breaker's mutex.
 */
#ifndef PERSISTOR_CORE_BREAKER_H
#define PERSISTOR_CORE_BREAKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "profile.h"

typedef enum breaker_state {
    BREAKER_CLOSED = 0,
    BREAKER_OPEN = 1,
    BREAKER_RECOVERING = 2,
} breaker_state;

typedef struct breaker {
    atomic_int state;
    pthread_mutex_t lock;
    int64_t opened_at_ms;  /* monotonic, when it last opened */
    int64_t next_probe_ms; /* monotonic */
    uint32_t probes_failed;
    char reason[256];      /* why it opened, for health and logs */
} breaker;

void breaker_init(breaker *b);
void breaker_destroy(breaker *b);

breaker_state breaker_get(const breaker *b);
const char *breaker_state_name(breaker_state state);

/* Open it (from closed or recovering) with `reason`; the first probe is
 * due after the policy's first ceiling.  True when this call opened a
 * closed breaker (so the caller logs the failover once). */
bool breaker_trip(breaker *b, const profile_retry *policy, const char *reason);

/* A probe failed: the next one waits the next ceiling (no jitter). */
void breaker_probe_failed(breaker *b, const profile_retry *policy, const char *reason);

/* Is an open breaker due for a probe at `now_ms`?  *next_ms gets when it
 * will be (INT64_MAX when the breaker is not open). */
bool breaker_probe_due(breaker *b, int64_t now_ms, int64_t *next_ms);

void breaker_set_recovering(breaker *b);
/* Close it; returns how long it was not closed, in ms. */
int64_t breaker_close(breaker *b);

/* Copy the reason and the ms since it opened (0 when closed). */
void breaker_snapshot(breaker *b, char *reason, size_t cap, int64_t *open_for_ms);

/* Milliseconds on the monotonic clock. */
int64_t breaker_now_ms(void);

#endif
