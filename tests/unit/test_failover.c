/*
 * test_failover.c — the router's resilience, seen through the public API
 * and the router itself: the retry policy's formula, durability rules for
 * a chain, degraded reads during an outage, the journal's format, and a
 * replay that never puts an older version over a newer one.
 *
 * The primary is fault.so (tests/faults) over sqlite, steered through its
 * control file; the fallback is lmdb.  The bigger scenarios (threads,
 * mongod, killed processes) are in tests/faults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <bson/bson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fault_control.h"
#include "journal.h"
#include "persistor/persistor.h"
#include "profile.h"
#include "retry.h"
#include "router.h"
#include "unit_env.h"

typedef struct fixture {
    char dir[64];
    char config[128];
    char control[128];
    fault_control *fault;
    persistor *p;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    unit_env_plugins();
    setenv("PERSISTOR_LOG_LEVEL", "off", 1);
    unit_env_tmpdir(f->dir, sizeof f->dir, "failover");
    snprintf(f->config, sizeof f->config, "%s/profiles.yaml", f->dir);
    snprintf(f->control, sizeof f->control, "%s/control", f->dir);
    f->fault = fault_control_open(f->control);
    assert_non_null(f->fault);
    FILE *out = fopen(f->config, "w");
    assert_non_null(out);
    /* Quick retries and probes: the tests wait for recovery. */
    fprintf(out,
            "profiles:\n"
            "  chain:\n"
            "    adapters:\n"
            "      - type: fault\n"
            "        path: %s\n"
            "        inner: %s\n"
            "        inner_options: file=%s/primary.sqlite\n"
            "        control: %s\n"
            "      - type: lmdb\n"
            "        directory: %s/fallback.lmdb\n"
            "    retry:\n"
            "      max_attempts: 2\n"
            "      initial_interval_ms: 5\n"
            "      backoff_coefficient: 2.0\n"
            "      max_interval_ms: 20\n"
            "  primary:\n"
            "    adapters:\n"
            "      - type: sqlite\n"
            "        file: %s/primary.sqlite\n"
            "  undeclared:\n"
            "    adapters:\n"
            "      - type: sqlite\n"
            "        file: %s/other.sqlite\n"
            "      - type: memory\n"
            "  declared:\n"
            "    adapters:\n"
            "      - type: sqlite\n"
            "        file: %s/other.sqlite\n"
            "      - type: memory\n"
            "        volatile: true\n"
            "  durable:\n"
            "    adapters:\n"
            "      - type: sqlite\n"
            "        file: %s/other.sqlite\n"
            "      - type: lmdb\n"
            "        directory: %s/other.lmdb\n"
            "  memory_only:\n"
            "    adapters:\n"
            "      - type: memory\n",
            FAILOVER_FAULT_SO, FAILOVER_SQLITE_SO, f->dir, f->control, f->dir, f->dir, f->dir,
            f->dir, f->dir, f->dir);
    fclose(out);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    persistor_close(f->p);
    fault_control_close(f->fault);
    unit_env_remove(f->dir);
    free(f);
    return 0;
}

static int32_t open_profile(fixture *f, const char *name, persistor **out, persistor_error *err)
{
    persistor_open_options opts = {.struct_size = sizeof opts, .config_path = f->config,
                                   .profile = name};
    return persistor_open(&opts, out, err);
}

static void open_or_fail(fixture *f, const char *name, persistor **out)
{
    persistor_error err = {0};
    if (open_profile(f, name, out, &err) != PERSISTOR_OK)
        fail_msg("open %s: %s", name, err.message);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Bounded wait for the primary to serve again (replay done). */
static void wait_recovered(persistor *p)
{
    for (int i = 0; i < 4000 && persistor_degraded(p); i++)
        sleep_ms(5);
    assert_false(persistor_degraded(p));
}

static void append(persistor *p, const char *xc, int n, char hash[PERSISTOR_HASH_HEX_LEN + 1])
{
    char json[64];
    snprintf(json, sizeof json, "{\"n\": %d}", n);
    persistor_snapshot_input in = {.struct_size = sizeof in, .xc_id = xc, .ts_ms = 1000 + n,
                                   .content_json = json};
    persistor_error err = {0};
    int32_t rc = persistor_snapshot_append(p, &in, hash, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("append %d: %s %s", n, persistor_rc_name(rc), err.message);
}

static size_t load_count(persistor *p, const char *xc, int *degraded)
{
    persistor_snapshot_iter *it;
    assert_int_equal(persistor_snapshot_load(p, xc, &it, NULL), PERSISTOR_OK);
    *degraded = persistor_snapshot_iter_degraded(it);
    const persistor_snapshot *s;
    size_t n = 0;
    while (persistor_snapshot_iter_next(it, &s, NULL) == PERSISTOR_OK) {
        assert_int_equal(s->degraded != 0, *degraded != 0);
        n++;
    }
    persistor_snapshot_iter_free(it);
    return n;
}

/* ------------------------------------------------------------------ */

static void test_retry_ceiling_follows_the_documented_formula(void **state)
{
    (void)state;
    profile_retry seed = {3, 1000, 2.0, 60000};
    assert_int_equal(retry_ceiling_ms(&seed, 1), 1000);
    assert_int_equal(retry_ceiling_ms(&seed, 2), 2000);
    assert_int_equal(retry_ceiling_ms(&seed, 3), 4000);
    assert_int_equal(retry_ceiling_ms(&seed, 6), 32000);
    assert_int_equal(retry_ceiling_ms(&seed, 7), 60000); /* 64000, capped */
    assert_int_equal(retry_ceiling_ms(&seed, 4000), 60000); /* no overflow */
    assert_int_equal(retry_ceiling_ms(&seed, 0), 1000);
    profile_retry flat = {5, 250, 1.0, 1000};
    assert_int_equal(retry_ceiling_ms(&flat, 9), 250);
}

static void test_jitter_spreads_over_the_whole_interval(void **state)
{
    (void)state;
    profile_retry seed = {3, 1000, 2.0, 60000};
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 2000; i++) {
        uint64_t d = retry_jitter_ms(&seed, 2);
        assert_true(d <= 2000);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    /* Full jitter: uniform in [0, 2000], so both ends get reached. */
    assert_true(lo < 200);
    assert_true(hi > 1800);
}

static void test_retry_only_what_may_run_again(void **state)
{
    (void)state;
    assert_true(retry_worth(PERSISTOR_E_RETRY, false));
    assert_true(retry_worth(PERSISTOR_E_UNCERTAIN, true));
    assert_false(retry_worth(PERSISTOR_E_UNCERTAIN, false));
    assert_false(retry_worth(PERSISTOR_E_INVALID, true));
    assert_false(retry_worth(PERSISTOR_E_CONFIG, true));
    assert_false(retry_worth(PERSISTOR_E_CORRUPT, true));
    assert_false(retry_worth(PERSISTOR_E_UNAVAILABLE, true));
}

static void test_volatile_fallback_behind_durable_primary_must_be_declared(void **state)
{
    fixture *f = *state;
    persistor *p = NULL;
    persistor_error err = {0};
    assert_int_equal(open_profile(f, "undeclared", &p, &err), PERSISTOR_E_CONFIG);
    assert_null(p);
    assert_non_null(strstr(err.message, "profiles.yaml:"));
    assert_non_null(strstr(err.message, "undeclared.adapters[1]"));
    assert_non_null(strstr(err.message, "volatile: true"));

    static const struct {
        const char *profile, *durability;
    } cases[] = {{"declared", "degraded"}, {"durable", "durable"}, {"memory_only", "volatile"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        open_or_fail(f, cases[i].profile, &p);
        persistor_health h;
        assert_int_equal(persistor_health_check(p, &h, NULL), PERSISTOR_OK);
        assert_string_equal(h.durability, cases[i].durability);
        assert_false(h.degraded);
        persistor_health_free(&h);
        persistor_close(p);
    }
}

static void test_outage_reads_are_degraded_and_writes_replay(void **state)
{
    fixture *f = *state;
    open_or_fail(f, "chain", &f->p);
    char kept[3][PERSISTOR_HASH_HEX_LEN + 1], during[3][PERSISTOR_HASH_HEX_LEN + 1];
    for (int i = 0; i < 3; i++)
        append(f->p, "xc", i, kept[i]);

    fault_inject(f->fault, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0);
    for (int i = 0; i < 3; i++)
        append(f->p, "xc", 10 + i, during[i]);
    assert_true(persistor_degraded(f->p));

    int degraded = 0;
    assert_int_equal(load_count(f->p, "xc", &degraded), 3); /* the fallback's only */
    assert_true(degraded);
    persistor_snapshot *s = NULL;
    assert_int_equal(persistor_snapshot_get(f->p, during[0], &s, NULL), PERSISTOR_OK);
    assert_true(s->degraded);
    persistor_snapshot_free(s);
    persistor_string_list hashes;
    assert_int_equal(persistor_snapshot_list_hashes(f->p, "xc", &hashes, NULL), PERSISTOR_OK);
    assert_true(hashes.degraded);
    persistor_string_list_free(&hashes);
    persistor_stats st;
    assert_int_equal(persistor_stats_get(f->p, &st, NULL), PERSISTOR_OK);
    assert_true(st.degraded);
    assert_string_equal(st.adapter_type, "lmdb");

    /* A context cannot be listed whole: its delete is refused... */
    persistor_error err = {0};
    assert_int_equal(persistor_snapshot_delete_context(f->p, "xc", NULL, &err),
                     PERSISTOR_E_UNAVAILABLE);
    assert_non_null(strstr(err.message, "primary is down"));
    /* ...but a delete by id is journaled, for the primary's copy too. */
    assert_int_equal(persistor_snapshot_delete(f->p, kept[0], NULL), PERSISTOR_OK);
    assert_int_equal(persistor_snapshot_delete(f->p, during[2], NULL), PERSISTOR_OK);

    persistor_health h;
    assert_int_equal(persistor_health_check(f->p, &h, NULL), PERSISTOR_OK);
    assert_true(h.degraded);
    assert_string_equal(h.adapters[0].breaker, "open");
    assert_int_not_equal(h.adapters[0].status, PERSISTOR_OK);
    assert_string_equal(h.adapters[1].breaker, "closed");
    assert_int_equal(h.adapters[1].journal_pending, 5); /* 3 appends, 2 deletes */
    persistor_health_free(&h);

    fault_clear(f->fault);
    wait_recovered(f->p);
    assert_int_equal(load_count(f->p, "xc", &degraded), 4); /* 3 + 3 - 2 */
    assert_false(degraded);
    assert_int_equal(persistor_snapshot_has(f->p, kept[0], NULL), PERSISTOR_NOT_FOUND);
    assert_int_equal(persistor_snapshot_has(f->p, during[2], NULL), PERSISTOR_NOT_FOUND);
    assert_int_equal(persistor_snapshot_has(f->p, during[0], NULL), PERSISTOR_OK);
    assert_int_equal(persistor_health_check(f->p, &h, NULL), PERSISTOR_OK);
    assert_int_equal(h.adapters[1].journal_pending, 0);
    assert_string_equal(h.adapters[0].breaker, "closed");
    persistor_health_free(&h);

    /* The primary's store itself holds them, not only this handle. */
    persistor *direct;
    open_or_fail(f, "primary", &direct);
    assert_int_equal(persistor_snapshot_has(direct, during[1], NULL), PERSISTOR_OK);
    assert_int_equal(persistor_snapshot_has(direct, kept[0], NULL), PERSISTOR_NOT_FOUND);
    persistor_close(direct);
}

static void test_journal_entry_round_trips_and_seqs_increase(void **state)
{
    (void)state;
    bson_t doc = BSON_INITIALIZER, entry = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "_id", "rec-1");
    BSON_APPEND_INT32(&doc, "v", 7);
    persistor_write_op op = {PERSISTOR_WRITE_UPSERT, doc.len, "rec-1", bson_get_data(&doc)};
    char seq[JOURNAL_SEQ_MAX];
    journal_next_seq(seq);
    assert_true(journal_entry_build(&entry, seq, "things", &op, 1234));
    journal_entry e;
    assert_true(journal_entry_parse(bson_get_data(&entry), entry.len, &e));
    assert_string_equal(e.seq, seq);
    assert_string_equal(e.collection, "things");
    assert_string_equal(e.id, "rec-1");
    assert_int_equal(e.kind, PERSISTOR_WRITE_UPSERT);
    assert_int_equal(e.doc_len, doc.len);
    assert_memory_equal(e.doc, bson_get_data(&doc), doc.len);
    bson_destroy(&entry);

    persistor_write_op del = {PERSISTOR_WRITE_DELETE, 0, "rec-1", NULL};
    bson_init(&entry);
    assert_true(journal_entry_build(&entry, seq, "things", &del, 1234));
    assert_true(journal_entry_parse(bson_get_data(&entry), entry.len, &e));
    assert_int_equal(e.kind, PERSISTOR_WRITE_DELETE);
    assert_null(e.doc);
    bson_destroy(&entry);
    assert_false(journal_entry_parse(bson_get_data(&doc), doc.len, &e)); /* not an entry */
    bson_destroy(&doc);

    char prev[JOURNAL_SEQ_MAX];
    snprintf(prev, sizeof prev, "%s", seq);
    for (int i = 0; i < 10000; i++) {
        journal_next_seq(seq);
        assert_true(strcmp(prev, seq) < 0);
        snprintf(prev, sizeof prev, "%s", seq);
    }
}

/* ------------------------------------------------------------------ */
/* Versioned replay, on the router with a collection of its own.      */

static const persistor_collection_spec things_spec = {
    .struct_size = sizeof things_spec,
    .name = "things",
    .version_field = "v",
};

static void router_upsert(router *r, const char *id, int v)
{
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "_id", id);
    BSON_APPEND_INT32(&doc, "v", v);
    persistor_write_op op = {PERSISTOR_WRITE_UPSERT, doc.len, id, bson_get_data(&doc)};
    int32_t result = -1;
    persistor_error err = {0};
    int32_t rc = router_write(r, "things", &op, 1, &result, &err);
    if (rc != PERSISTOR_OK || result != PERSISTOR_OK)
        fail_msg("upsert %s v%d: %s %s", id, v, persistor_rc_name(rc), err.message);
    bson_destroy(&doc);
}

static int router_version(router *r, const char *id)
{
    persistor_buffer buf = {0};
    assert_int_equal(router_get(r, "things", id, &buf, NULL, NULL), PERSISTOR_OK);
    bson_t view;
    bson_iter_t it;
    assert_true(bson_init_static(&view, buf.data, buf.len));
    assert_true(bson_iter_init_find(&it, &view, "v"));
    int v = bson_iter_int32(&it);
    free(buf.data);
    return v;
}

static router *router_on(fixture *f, const char *name, profile **prof)
{
    persistor_error err = {0};
    if (profile_load(f->config, name, prof, &err) != PERSISTOR_OK)
        fail_msg("profile %s: %s", name, err.message);
    router *r = NULL;
    if (router_open(*prof, &things_spec, 1, NULL, NULL, &r, &err) != PERSISTOR_OK)
        fail_msg("router %s: %s", name, err.message);
    return r;
}

static void test_replayed_upsert_never_replaces_a_newer_version(void **state)
{
    fixture *f = *state;
    profile *chain_prof, *direct_prof;
    router *chain = router_on(f, "chain", &chain_prof);
    router *direct = router_on(f, "primary", &direct_prof);

    fault_inject(f->fault, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0);
    router_upsert(chain, "a", 1); /* journaled in order: a v1, a v2, b v5 */
    router_upsert(chain, "a", 2);
    router_upsert(chain, "b", 5);
    assert_true(router_degraded(chain));
    /* Meanwhile another process wrote to the primary directly. */
    router_upsert(direct, "a", 3);
    router_upsert(direct, "b", 4);

    fault_clear(f->fault);
    for (int i = 0; i < 4000 && router_degraded(chain); i++)
        sleep_ms(5);
    assert_false(router_degraded(chain));
    assert_int_equal(router_version(direct, "a"), 3); /* v1 and v2 are older: kept v3 */
    assert_int_equal(router_version(direct, "b"), 5); /* v5 is newer than v4: replaced */

    router_close(chain);
    router_close(direct);
    profile_free(chain_prof);
    profile_free(direct_prof);
}

/* Grouped counts through the router: neither fault.so nor lmdb has the
 * group_count slot, so the core groups; during an outage the fallback
 * answers from what it holds, degraded. */
static void expect_router_groups(router *r, const char *want, bool want_degraded)
{
    persistor_buffer buf = {0};
    persistor_error err = {0};
    bool degraded = !want_degraded;
    int32_t rc = router_group_count(r, "things", NULL, 0, "v", &buf, &degraded, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("group_count: %s %s", persistor_rc_name(rc), err.message);
    bson_t *answer = bson_new_from_data(buf.data, buf.len);
    assert_non_null(answer);
    char *got = bson_as_relaxed_extended_json(answer, NULL);
    if (strcmp(got, want) != 0)
        fail_msg("group_count:\n  got  %s\n  want %s", got, want);
    assert_true(degraded == want_degraded);
    bson_free(got);
    bson_destroy(answer);
    free(buf.data);
}

static void test_router_group_count_by_the_core_and_on_failover(void **state)
{
    fixture *f = *state;
    profile *prof;
    router *r = router_on(f, "chain", &prof);
    router_upsert(r, "a", 1);
    router_upsert(r, "b", 2);
    router_upsert(r, "c", 1);
    expect_router_groups(r, "{ \"groups\" : [ { \"_id\" : 1, \"total\" : 2 }, "
                            "{ \"_id\" : 2, \"total\" : 1 } ] }", false);
    persistor_buffer buf = {0};
    persistor_error err = {0};
    assert_int_equal(router_group_count(r, "things", NULL, 0, "$v", &buf, NULL, &err),
                     PERSISTOR_E_INVALID);
    fault_inject(f->fault, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0);
    router_upsert(r, "d", 7); /* only the fallback holds it */
    expect_router_groups(r, "{ \"groups\" : [ { \"_id\" : 7, \"total\" : 1 } ] }", true);
    fault_clear(f->fault);
    router_close(r);
    profile_free(prof);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_ceiling_follows_the_documented_formula),
        cmocka_unit_test(test_jitter_spreads_over_the_whole_interval),
        cmocka_unit_test(test_retry_only_what_may_run_again),
        cmocka_unit_test(test_journal_entry_round_trips_and_seqs_increase),
        cmocka_unit_test_setup_teardown(test_volatile_fallback_behind_durable_primary_must_be_declared,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_outage_reads_are_degraded_and_writes_replay, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_replayed_upsert_never_replaces_a_newer_version, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_router_group_count_by_the_core_and_on_failover, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
