/*
 * router.c — the adapter chain: opening it, the circuit breakers and the
 * recovery thread that probes them, and health.
 *
 * Calls (router_ops.c) go to the first adapter of the chain whose breaker
 * is closed.  An adapter that does not answer at open, or stops answering
 * later, has its breaker opened; from then on one thread per router — the
 * recovery thread, started at open — pings it, backing off, so no caller
 * ever waits on a dead store.  When the primary answers again, the
 * fallbacks' journals are replayed into it (router_replay.c) before its
 * breaker closes.  Retry, breaker, failover and replay live in the router
 * and nowhere else.
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#include "router_internal.h"

#include <bson/bson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "buffer.h"
#include "error.h"
#include "journal.h"
#include "log.h"
#include "retry.h"

void router_adapter_lock(router_adapter *a)
{
    if (a->serialise)
        pthread_mutex_lock(&a->lock);
}

void router_adapter_unlock(router_adapter *a)
{
    if (a->serialise)
        pthread_mutex_unlock(&a->lock);
}

int32_t router_adapter_fail(const router_adapter *a, int32_t rc, persistor_error *err)
{
    if (rc < 0)
        error_prefix(err, "%s", a->label);
    return rc;
}

int64_t router_now_ms(const router *r)
{
    return r->clock != NULL ? r->clock(r->clock_ctx) : host_realtime_ms();
}

router_collection *router_find_collection(router *r, const char *name)
{
    for (size_t i = 0; i < r->n_collections; i++)
        if (strcmp(r->collections[i].spec->name, name) == 0)
            return &r->collections[i];
    return NULL;
}

bool router_fails_over(int32_t rc)
{
    return rc == PERSISTOR_E_RETRY || rc == PERSISTOR_E_UNCERTAIN || rc == PERSISTOR_E_UNAVAILABLE;
}

bool router_degraded(router *r)
{
    return breaker_get(&r->adapters[0].breaker) != BREAKER_CLOSED;
}

/* ------------------------------------------------------------------ */
/* Retry and the breaker                                              */

int32_t router_attempt(router *r, router_adapter *a, const char *operation, bool idempotent,
                       router_attempt_fn fn, void *ctx, persistor_error *err)
{
    const profile_retry *policy = &r->prof->retry;
    for (uint32_t attempt = 1;; attempt++) {
        router_adapter_lock(a);
        int32_t rc = fn(a, ctx, err);
        router_adapter_unlock(a);
        if (!retry_worth(rc, idempotent) || attempt >= policy->max_attempts)
            return rc;
        /* Another call gave up on this adapter meanwhile: follow it to the
         * next adapter instead of waiting out our own retries. */
        if (breaker_get(&a->breaker) == BREAKER_OPEN)
            return rc;
        uint64_t delay = retry_jitter_ms(policy, attempt);
        log_line line;
        if (log_begin(&line, PERSISTOR_LOG_WARN, "retry_scheduled")) {
            log_str(&line, "adapter", a->label);
            log_str(&line, "operation", operation);
            log_int(&line, "attempt", attempt + 1);
            log_int(&line, "max_attempts", policy->max_attempts);
            log_int(&line, "delay_ms", (int64_t)delay);
            log_str(&line, "code", persistor_rc_name(rc));
            log_str(&line, "reason", err != NULL ? err->message : "");
            log_end(&line);
        }
        retry_sleep_ms(delay);
    }
}

static void router_wake_recovery(router *r)
{
    pthread_mutex_lock(&r->recovery_lock);
    pthread_cond_signal(&r->recovery_wake);
    pthread_mutex_unlock(&r->recovery_lock);
}

void router_trip(router *r, router_adapter *a, int32_t rc, const persistor_error *err)
{
    char reason[256];
    snprintf(reason, sizeof reason, "%s: %s", persistor_rc_name(rc),
             err != NULL && err->message[0] ? err->message : "no answer");
    if (!breaker_trip(&a->breaker, &r->prof->retry, reason))
        return;
    const char *to = "none";
    for (size_t i = a->index + 1; i < r->n_adapters; i++)
        if (breaker_get(&r->adapters[i].breaker) == BREAKER_CLOSED) {
            to = r->adapters[i].label;
            break;
        }
    log_line line;
    if (log_begin(&line, PERSISTOR_LOG_ERROR, "adapter_failover")) {
        log_str(&line, "adapter", a->label);
        log_str(&line, "to", to);
        log_str(&line, "code", persistor_rc_name(rc));
        log_str(&line, "reason", reason);
        log_end(&line);
    }
    router_wake_recovery(r);
}

/* ------------------------------------------------------------------ */
/* Opening an adapter                                                 */

static void router_adapter_close(router_adapter *a)
{
    if (a->inst != NULL)
        a->api->close(a->inst);
    config_free(a->config);
    host_free(a->host);
    loader_release(a->module);
    breaker_destroy(&a->breaker);
    pthread_mutex_destroy(&a->lock);
}

/* Load the module and check the options: everything that needs no store. */
static int32_t router_adapter_load(router *r, size_t index, router_adapter *a,
                                   persistor_error *err)
{
    const profile_adapter *entry = &r->prof->adapters[index];
    snprintf(a->label, sizeof a->label, "%s#%zu", entry->type, index);
    a->index = index;
    pthread_mutex_init(&a->lock, NULL);
    breaker_init(&a->breaker);
    atomic_init(&a->ready, false);

    int32_t rc = loader_acquire(entry->type, entry->path, r->prof->plugin_dir, host_default(),
                                &a->module, err);
    if (rc != PERSISTOR_OK)
        return rc;
    a->api = loader_adapter(a->module);
    a->serialise = !(a->api->capabilities & PERSISTOR_CAP_THREAD_SAFE);
    a->durable = (a->api->capabilities & PERSISTOR_CAP_DURABLE) != 0;
    a->declared_volatile = entry->declared_volatile;
    rc = config_new(entry, a->api, a->label, &a->config, err);
    if (rc != PERSISTOR_OK)
        return rc;
    a->host = host_new(a->label, r->clock, r->clock_ctx);
    if (a->host == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory", a->label);
    return PERSISTOR_OK;
}

/* Open the store and ensure every collection (and, on a fallback, the
 * journal).  Runs at router_open, and in the recovery thread for an
 * adapter that did not answer then; on success the adapter is ready. */
static int32_t router_adapter_connect(router *r, router_adapter *a, persistor_error *err)
{
    int32_t rc = PERSISTOR_OK;
    router_adapter_lock(a);
    if (a->inst == NULL) {
        rc = a->api->open(a->host, a->config, &a->inst, err);
        if (rc != PERSISTOR_OK) {
            a->inst = NULL;
            error_prefix(err, "%s: open failed (%s)", a->label, loader_path(a->module));
        }
    }
    for (size_t i = 0; rc == PERSISTOR_OK && i <= r->n_collections; i++) {
        const persistor_collection_spec *spec =
            i < r->n_collections ? r->collections[i].spec : a->index > 0 ? journal_spec() : NULL;
        if (spec == NULL)
            break;
        rc = a->api->ensure_collection(a->inst, spec, err);
        if (rc != PERSISTOR_OK)
            error_prefix(err, "%s: ensure_collection %s", a->label, spec->name);
    }
    router_adapter_unlock(a);
    if (rc != PERSISTOR_OK)
        return rc;
    atomic_store(&a->ready, true);
    log_line line;
    if (log_begin(&line, PERSISTOR_LOG_INFO, "adapter_opened")) {
        log_str(&line, "adapter", a->label);
        log_str(&line, "path", loader_path(a->module));
        log_str(&line, "version", a->api->version);
        log_end(&line);
    }
    return PERSISTOR_OK;
}

/* A fallback that dies with the process behind a primary that does not:
 * the profile must say it accepts that (`volatile: true`). */
static int32_t router_check_durability(router *r, persistor_error *err)
{
    if (!r->adapters[0].durable)
        return PERSISTOR_OK;
    for (size_t i = 1; i < r->n_adapters; i++) {
        const router_adapter *a = &r->adapters[i];
        const profile_adapter *entry = &r->prof->adapters[i];
        if (a->durable || a->declared_volatile)
            continue;
        return error_set(err, PERSISTOR_E_CONFIG,
                         "%s:%u:%u: %s: %s does not survive the process, so writes it takes "
                         "while %s is down are lost if the process ends before they are "
                         "replayed; declare `volatile: true` on this entry to accept that, or "
                         "use a durable fallback (sqlite, lmdb)",
                         entry->mark.file, entry->mark.line, entry->mark.column, entry->key_path,
                         a->label, r->adapters[0].label);
    }
    return PERSISTOR_OK;
}

/* Connect every adapter; one that does not answer starts with its breaker
 * open.  Fails on anything else, or when none answers. */
static int32_t router_connect_chain(router *r, persistor_error *err)
{
    size_t ready = 0;
    char reasons[PERSISTOR_ERROR_MESSAGE_MAX] = "";
    size_t used = 0;
    for (size_t i = 0; i < r->n_adapters; i++) {
        router_adapter *a = &r->adapters[i];
        persistor_error one = {0};
        int32_t rc = router_adapter_connect(r, a, &one);
        if (rc == PERSISTOR_OK) {
            ready++;
            continue;
        }
        if (!router_fails_over(rc)) {
            *err = one;
            return rc;
        }
        router_trip(r, a, rc, &one);
        used += (size_t)snprintf(reasons + used, used < sizeof reasons ? sizeof reasons - used : 0,
                                 "%s%s", used ? "; " : "", one.message);
    }
    if (ready == 0)
        return error_set(err, PERSISTOR_E_UNAVAILABLE,
                         "profile %s: no adapter of the chain answers: %s", r->prof->name, reasons);
    return PERSISTOR_OK;
}

static void *router_recovery_main(void *arg);

static int32_t router_start_recovery(router *r, persistor_error *err)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->recovery_wake, &attr);
    pthread_condattr_destroy(&attr);
    int rc = pthread_create(&r->recovery_thread, NULL, router_recovery_main, r);
    if (rc != 0)
        return error_set(err, PERSISTOR_E_NOMEM, "profile %s: cannot start the recovery thread: %s",
                         r->prof->name, strerror(rc));
    r->recovery_started = true;
    return PERSISTOR_OK;
}

static router *router_alloc(const profile *prof, const persistor_collection_spec *specs,
                            size_t n_specs, host_clock_fn clock, void *clock_ctx)
{
    router *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->prof = prof;
    r->clock = clock;
    r->clock_ctx = clock_ctx;
    r->adapters = calloc(prof->n_adapters, sizeof *r->adapters);
    r->collections = calloc(n_specs ? n_specs : 1, sizeof *r->collections);
    if (r->adapters == NULL || r->collections == NULL) {
        free(r->adapters);
        free(r->collections);
        free(r);
        return NULL;
    }
    for (size_t i = 0; i < n_specs; i++) {
        r->collections[i].spec = &specs[i];
        pthread_mutex_init(&r->collections[i].sweep_lock, NULL);
        r->collections[i].last_sweep_ms = INT64_MIN;
    }
    r->n_collections = n_specs;
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* A replay's final drain must not starve behind a stream of writers. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&r->route_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&r->recovery_lock, NULL);
    pthread_mutex_init(&r->replay_lock, NULL);
    return r;
}

int32_t router_open(const profile *prof, const persistor_collection_spec *specs, size_t n_specs,
                    host_clock_fn clock, void *clock_ctx, router **out, persistor_error *err)
{
    router *r = router_alloc(prof, specs, n_specs, clock, clock_ctx);
    if (r == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory opening profile %s", prof->name);
    /* Everything that needs no store is checked before any store is touched. */
    int32_t rc = PERSISTOR_OK;
    for (size_t i = 0; i < prof->n_adapters && rc == PERSISTOR_OK; i++) {
        rc = router_adapter_load(r, i, &r->adapters[i], err);
        r->n_adapters = i + 1; /* close what was (partly) loaded on failure */
    }
    if (rc == PERSISTOR_OK)
        rc = router_check_durability(r, err);
    if (rc == PERSISTOR_OK)
        rc = router_start_recovery(r, err);
    if (rc == PERSISTOR_OK)
        rc = router_connect_chain(r, err);
    if (rc != PERSISTOR_OK) {
        router_close(r);
        return rc;
    }
    /* What an earlier process left in a fallback goes to the primary now,
     * before this one writes anything: a short-lived process strands
     * nothing, and nothing reaches the primary out of order. */
    if (atomic_load(&r->adapters[0].ready)) {
        for (size_t i = 1; i < r->n_adapters; i++)
            if (atomic_load(&r->adapters[i].ready) && router_journal_pending(&r->adapters[i]) > 0) {
                breaker_trip(&r->adapters[0].breaker, &r->prof->retry, "journal to replay");
                router_recover_primary(r);
                break;
            }
    }
    *out = r;
    return PERSISTOR_OK;
}

void router_close(router *r)
{
    if (r == NULL)
        return;
    if (r->recovery_started) {
        pthread_mutex_lock(&r->recovery_lock);
        r->stopping = true;
        pthread_cond_signal(&r->recovery_wake);
        pthread_mutex_unlock(&r->recovery_lock);
        pthread_join(r->recovery_thread, NULL);
        pthread_cond_destroy(&r->recovery_wake);
    }
    for (size_t i = r->n_adapters; i-- > 0;)
        router_adapter_close(&r->adapters[i]);
    for (size_t i = 0; i < r->n_collections; i++)
        pthread_mutex_destroy(&r->collections[i].sweep_lock);
    pthread_rwlock_destroy(&r->route_lock);
    pthread_mutex_destroy(&r->recovery_lock);
    pthread_mutex_destroy(&r->replay_lock);
    free(r->adapters);
    free(r->collections);
    free(r);
}

/* ------------------------------------------------------------------ */
/* The recovery thread                                                */

static int32_t router_ping_attempt(router_adapter *a, void *ctx, persistor_error *err)
{
    (void)ctx;
    return a->api->ping(a->inst, err);
}

/* Probe one open adapter: connect it if it never was, then ping. */
static void router_probe(router *r, router_adapter *a)
{
    persistor_error err = {0};
    int32_t rc = atomic_load(&a->ready) ? PERSISTOR_OK : router_adapter_connect(r, a, &err);
    if (rc == PERSISTOR_OK) {
        router_adapter_lock(a);
        rc = router_ping_attempt(a, NULL, &err);
        router_adapter_unlock(a);
    }
    if (rc != PERSISTOR_OK) {
        char reason[256];
        snprintf(reason, sizeof reason, "%s: %s", persistor_rc_name(rc), err.message);
        breaker_probe_failed(&a->breaker, &r->prof->retry, reason);
        log_line line;
        if (log_begin(&line, PERSISTOR_LOG_DEBUG, "adapter_probe_failed")) {
            log_str(&line, "adapter", a->label);
            log_str(&line, "reason", reason);
            log_end(&line);
        }
        return;
    }
    if (a->index == 0) {
        router_recover_primary(r);
        return;
    }
    int64_t outage = breaker_close(&a->breaker);
    log_line line;
    if (log_begin(&line, PERSISTOR_LOG_WARN, "adapter_recovered")) {
        log_str(&line, "adapter", a->label);
        log_int(&line, "outage_ms", outage);
        log_end(&line);
    }
    /* A fallback that was down while the primary recovered may still hold
     * a journal: replay it now that it can be read. */
    if (breaker_get(&r->adapters[0].breaker) == BREAKER_CLOSED && router_journal_pending(a) > 0) {
        breaker_trip(&r->adapters[0].breaker, &r->prof->retry, "journal to replay");
        router_recover_primary(r);
    }
}

static void *router_recovery_main(void *arg)
{
    router *r = arg;
    pthread_mutex_lock(&r->recovery_lock);
    while (!r->stopping) {
        int64_t now = breaker_now_ms(), next = INT64_MAX;
        for (size_t i = 0; i < r->n_adapters && !r->stopping; i++) {
            router_adapter *a = &r->adapters[i];
            int64_t when;
            if (!breaker_probe_due(&a->breaker, now, &when)) {
                if (when < next)
                    next = when;
                continue;
            }
            pthread_mutex_unlock(&r->recovery_lock);
            router_probe(r, a);
            pthread_mutex_lock(&r->recovery_lock);
            next = now; /* look again: the probe took time */
        }
        if (r->stopping || next == now)
            continue;
        if (next == INT64_MAX) {
            pthread_cond_wait(&r->recovery_wake, &r->recovery_lock);
        } else {
            struct timespec until = {.tv_sec = (time_t)(next / 1000),
                                     .tv_nsec = (long)(next % 1000) * 1000000};
            pthread_cond_timedwait(&r->recovery_wake, &r->recovery_lock, &until);
        }
    }
    pthread_mutex_unlock(&r->recovery_lock);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Health                                                             */

static uint64_t router_elapsed_us(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t us = (now.tv_sec - since->tv_sec) * 1000000 + (now.tv_nsec - since->tv_nsec) / 1000;
    return us < 0 ? 0 : (uint64_t)us;
}

/* The adapter's own line, redacted like every log line: health output is
 * often pasted into tickets. */
static void router_describe(router_adapter *a, persistor_adapter_health *h)
{
    persistor_buffer line = {0};
    persistor_error err = {0};
    char raw[sizeof h->detail];
    router_adapter_lock(a);
    int32_t rc = a->api->describe(a->inst, &line, &err);
    router_adapter_unlock(a);
    if (rc == PERSISTOR_OK)
        snprintf(raw, sizeof raw, "%.*s", (int)line.len, line.data ? (const char *)line.data : "");
    else
        snprintf(raw, sizeof raw, "describe failed: %s", err.message);
    log_redact(raw, h->detail, sizeof h->detail);
    buffer_free(&line);
}

static void router_adapter_health(router *r, router_adapter *a, persistor_adapter_health *h)
{
    persistor_error ping_err = {0};
    char reason[256];
    int64_t open_for;
    snprintf(h->label, sizeof h->label, "%s", a->label);
    snprintf(h->type, sizeof h->type, "%s", a->api->name);
    snprintf(h->version, sizeof h->version, "%s", a->api->version);
    h->capabilities = a->api->capabilities;
    h->durable = a->durable;
    breaker_state state = breaker_get(&a->breaker);
    snprintf(h->breaker, sizeof h->breaker, "%s", breaker_state_name(state));
    breaker_snapshot(&a->breaker, reason, sizeof reason, &open_for);
    h->breaker_open_ms = (uint64_t)open_for;
    /* An open breaker is the recovery thread's to probe: pinging a hung
     * store here would make health wait its socket timeout. */
    if (!atomic_load(&a->ready) || state == BREAKER_OPEN) {
        h->status = PERSISTOR_E_UNAVAILABLE;
        log_redact(reason, h->message, sizeof h->message);
        if (a->index > 0)
            h->journal_pending = router_journal_pending(a);
        return;
    }
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    router_adapter_lock(a);
    h->status = a->api->ping(a->inst, &ping_err);
    router_adapter_unlock(a);
    h->latency_us = router_elapsed_us(&start);
    if (h->status != PERSISTOR_OK)
        log_redact(ping_err.message, h->message, sizeof h->message);
    else if (state != BREAKER_CLOSED)
        log_redact(reason, h->message, sizeof h->message);
    if (h->status == PERSISTOR_OK && a->api->describe != NULL)
        router_describe(a, h);
    if (a->index > 0)
        h->journal_pending = router_journal_pending(a);
}

int32_t router_health(router *r, persistor_health *out, persistor_error *err)
{
    out->count = 0;
    out->adapters = calloc(r->n_adapters, sizeof *out->adapters);
    if (out->adapters == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory checking health");
    bool volatile_fallback = false;
    for (size_t i = 0; i < r->n_adapters; i++) {
        router_adapter_health(r, &r->adapters[i], &out->adapters[i]);
        volatile_fallback |= i > 0 && !r->adapters[i].durable;
        out->count++;
    }
    out->degraded = router_degraded(r);
    const char *durability = !r->adapters[0].durable ? "volatile"
                             : volatile_fallback     ? "degraded"
                                                     : "durable";
    snprintf(out->durability, sizeof out->durability, "%s", durability);
    return PERSISTOR_OK;
}
