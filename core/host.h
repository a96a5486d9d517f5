/*
 * host.h — the host table libpersistor hands to adapters.
 *
 * Each open adapter instance gets its own table, so host->log knows which
 * adapter is speaking and host->now_ms follows the clock the application
 * chose (tests move it to exercise TTL).  The process-wide default table
 * is what persistor_adapter_entry and module_init receive.
 */
#ifndef PERSISTOR_CORE_HOST_H
#define PERSISTOR_CORE_HOST_H

#include "persistor/adapter.h"

typedef int64_t (*host_clock_fn)(void *ctx);

/* The process-wide table: label "persistor", real clock.  Never freed. */
const persistor_host *host_default(void);

/* A table for one adapter instance.  `label` (copied) names it in logs,
 * e.g. "memory#0"; `clock` NULL means the real clock.  NULL on NOMEM.
 * Free with host_free once the instance is closed. */
persistor_host *host_new(const char *label, host_clock_fn clock, void *ctx);
void host_free(persistor_host *host);

/* The real clock, ms since the epoch. */
int64_t host_realtime_ms(void);

#endif
