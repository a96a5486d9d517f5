/*
 * retry.h — the profile's retry policy: how long to wait before the next
 * attempt of an operation that answered E_RETRY or E_UNCERTAIN.
 *
 * Attempt n (n = 1 for the first retry, after the first failure) waits a
 * random time, uniform in [0, ceiling(n)] ms ("full jitter"), where
 *
 *     ceiling(n) = min(max_interval_ms, initial_interval_ms * backoff_coefficient^(n-1))
 *
 * and at most max_attempts calls are made in all (the first one included).
 * The same ceiling, without the jitter, spaces the circuit breaker's probes.
 * Nothing here touches an adapter.
 */
#ifndef PERSISTOR_CORE_RETRY_H
#define PERSISTOR_CORE_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "profile.h"

/* ceiling(n) in ms, for n >= 1 (n <= 0 is treated as 1). */
uint64_t retry_ceiling_ms(const profile_retry *policy, uint32_t n);

/* A uniform random wait in [0, ceiling(n)] ms, from a per-thread generator. */
uint64_t retry_jitter_ms(const profile_retry *policy, uint32_t n);

/* Sleep `ms` milliseconds of real time (signals do not cut it short). */
void retry_sleep_ms(uint64_t ms);

/* Is `rc` worth another attempt?  E_RETRY always; E_UNCERTAIN only for an
 * operation that may safely run twice. */
bool retry_worth(int32_t rc, bool idempotent);

#endif
