/*
 * cmd_demo.c — `persistor demo`: an agent kernel in miniature.
 *
 * Three executions run their steps and checkpoint after each one; one of
 * them "crashes" halfway, and a new kernel restores it from its latest
 * snapshot and finishes the work.  It exercises append, latest, load,
 * has, idempotent re-append and stats through the public API only, on
 * whatever profile is selected, and prints what happened.
 */
#include <bson/bson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define DEMO_STEPS 4
#define DEMO_CRASH_AFTER 2

typedef struct demo_agent {
    const char *name;
    const char *goal;
    bool crashes;
    char xc_id[96];
    int step; /* steps done */
    char last_hash[PERSISTOR_HASH_HEX_LEN + 1];
} demo_agent;

static int64_t demo_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One checkpoint: the kernel's state after `agent->step` steps. */
static int32_t demo_checkpoint(persistor *p, demo_agent *agent, int64_t ts,
                               persistor_error *err)
{
    char content[1024];
    snprintf(content, sizeof content,
             "{\"state\":{\"agent\":\"%s\",\"goal\":\"%s\",\"step\":%d,\"of\":%d,"
             "\"memory\":{\"notes\":\"finished step %d\"}},"
             "\"events\":[{\"type\":\"step_completed\",\"step\":%d}],"
             "\"metadata\":{\"kernel\":\"persistor-demo\",\"version\":1}}",
             agent->name, agent->goal, agent->step, DEMO_STEPS, agent->step, agent->step);
    persistor_snapshot_input in = {.struct_size = sizeof in,
                                   .tenant_id = "demo",
                                   .xc_id = agent->xc_id,
                                   .ts_ms = ts,
                                   .content_json = content};
    int32_t rc = persistor_snapshot_append(p, &in, agent->last_hash, err);
    return rc == PERSISTOR_EXISTS ? PERSISTOR_OK : rc;
}

/* Run steps until done, or until the crash point for a crashing agent. */
static int32_t demo_run(persistor *p, demo_agent *agent, int64_t *clock, int stop_after,
                        persistor_error *err)
{
    while (agent->step < stop_after) {
        agent->step++;
        int32_t rc = demo_checkpoint(p, agent, (*clock)++, err);
        if (rc != PERSISTOR_OK)
            return rc;
    }
    return PERSISTOR_OK;
}

/* A new kernel picks the execution up from its latest snapshot. */
static int32_t demo_restore(persistor *p, demo_agent *agent, char *from_hash,
                            persistor_error *err)
{
    persistor_snapshot *latest;
    int32_t rc = persistor_snapshot_latest(p, agent->xc_id, &latest, err);
    if (rc != PERSISTOR_OK)
        return rc;
    snprintf(from_hash, PERSISTOR_HASH_HEX_LEN + 1, "%s", latest->hash);
    /* A kernel deserialises its whole state; the demo needs only the step. */
    bson_t doc;
    bson_iter_t it, step;
    agent->step = 0;
    if (bson_init_static(&doc, latest->bson, latest->bson_len) && bson_iter_init(&it, &doc) &&
        bson_iter_find_descendant(&it, "state.step", &step) && BSON_ITER_HOLDS_INT32(&step))
        agent->step = bson_iter_int32(&step);
    persistor_snapshot_free(latest);
    return PERSISTOR_OK;
}

static int demo_fail(persistor *p, int32_t rc, const persistor_error *err)
{
    persistor_close(p);
    return cli_fail(rc, err);
}

int cmd_demo(const cli_globals *g, int argc, char **argv)
{
    if (argc > 1)
        return cli_usage("demo: unexpected argument '%s'", argv[1]);
    persistor *p;
    int code = cli_open(g, &p);
    if (code != CLI_EXIT_OK)
        return code;

    demo_agent agents[] = {
        {"planner", "split the ticket into tasks", false, "", 0, ""},
        {"coder", "write the patch", true, "", 0, ""},
        {"reviewer", "review the patch", false, "", 0, ""},
    };
    size_t n_agents = sizeof agents / sizeof agents[0];
    int64_t clock = demo_now_ms();
    persistor_error err = {0};
    int32_t rc;

    printf("persistor demo: an agent kernel on profile \"%s\" (%s)\n\n",
           persistor_profile_name(p), persistor_config_path(p));
    for (size_t i = 0; i < n_agents; i++) {
        demo_agent *a = &agents[i];
        snprintf(a->xc_id, sizeof a->xc_id, "demo-%lld-%s", (long long)clock, a->name);
        rc = demo_run(p, a, &clock, a->crashes ? DEMO_CRASH_AFTER : DEMO_STEPS, &err);
        if (rc != PERSISTOR_OK)
            return demo_fail(p, rc, &err);
        printf("  %-9s %-30s %d/%d steps, checkpoint after each%s\n", a->name, a->goal, a->step,
               DEMO_STEPS, a->crashes ? "  -- crashed!" : "");
    }

    demo_agent *crashed = &agents[1];
    char from_hash[PERSISTOR_HASH_HEX_LEN + 1];
    crashed->step = 0; /* the new kernel starts with nothing in memory */
    if ((rc = demo_restore(p, crashed, from_hash, &err)) != PERSISTOR_OK)
        return demo_fail(p, rc, &err);
    printf("\n  restore:  %s resumed at step %d from its latest snapshot %.12s…\n",
           crashed->name, crashed->step, from_hash);
    if ((rc = demo_run(p, crashed, &clock, DEMO_STEPS, &err)) != PERSISTOR_OK)
        return demo_fail(p, rc, &err);
    printf("            and finished %d/%d steps\n", crashed->step, DEMO_STEPS);

    /* A retried checkpoint must not store a second copy. */
    persistor_stats before, after;
    if ((rc = persistor_stats_get(p, &before, &err)) != PERSISTOR_OK)
        return demo_fail(p, rc, &err);
    crashed->step = DEMO_STEPS;
    if ((rc = demo_checkpoint(p, crashed, clock - 1, &err)) != PERSISTOR_OK ||
        (rc = persistor_stats_get(p, &after, &err)) != PERSISTOR_OK)
        return demo_fail(p, rc, &err);
    printf("  retry:    re-appending the last checkpoint stored %llu new snapshot(s)\n",
           (unsigned long long)(after.item_count - before.item_count));

    persistor_string_list hashes;
    if ((rc = persistor_snapshot_list_hashes(p, crashed->xc_id, &hashes, &err)) != PERSISTOR_OK)
        return demo_fail(p, rc, &err);
    printf("  history:  %s has %zu snapshots, oldest %.12s…, newest %.12s…\n", crashed->name,
           hashes.count, hashes.count ? hashes.items[0] : "", hashes.count ? hashes.items[hashes.count - 1] : "");
    persistor_string_list_free(&hashes);

    printf("\n  store:    %llu snapshots in all, %llu bytes, %.1f bytes on average, adapter %s\n",
           (unsigned long long)after.item_count, (unsigned long long)after.total_size,
           after.average_item_size, after.adapter_type);
    if (strcmp(after.adapter_type, "memory") == 0)
        printf("\nThe memory adapter keeps nothing once this process ends.\n");
    else
        printf("\nTry: persistor --profile %s snapshot load %s\n", persistor_profile_name(p),
               crashed->xc_id);
    persistor_close(p);
    return CLI_EXIT_OK;
}
