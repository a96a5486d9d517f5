/*
 * cmd_info.c — `persistor profiles`, `health` and `stats`: commands that
 * describe a profile and its stores without changing anything.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* Parse the one optional flag these commands take. */
static int info_parse_json_flag(int argc, char **argv, const char *command, bool *json)
{
    *json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            *json = true;
        else
            return cli_usage("%s: unexpected argument '%s'", command, argv[i]);
    }
    return CLI_EXIT_OK;
}

int cmd_profiles(const cli_globals *g, int argc, char **argv)
{
    if (argc > 1)
        return cli_usage("profiles: unexpected argument '%s'", argv[1]);
    persistor_profile_list list;
    persistor_error err = {0};
    int32_t rc = persistor_profiles(g->config, &list, &err);
    if (rc != PERSISTOR_OK)
        return rc == PERSISTOR_NOT_FOUND ? (cli_fail(rc, &err), CLI_EXIT_USAGE)
                                         : cli_fail(rc, &err);
    printf("profiles in %s:\n", list.config_path);
    for (size_t i = 0; i < list.count; i++) {
        const persistor_profile_info *p = &list.items[i];
        printf("  %-14s %s%s%s\n", p->name, p->chain, p->description[0] ? "  — " : "",
               p->description);
    }
    persistor_profile_list_free(&list);
    return CLI_EXIT_OK;
}

static const char *info_caps_text(uint64_t caps, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s%s%s%s", (caps & PERSISTOR_CAP_DURABLE) ? "durable " : "",
             (caps & PERSISTOR_CAP_THREAD_SAFE) ? "thread-safe " : "",
             (caps & PERSISTOR_CAP_NATIVE_TTL) ? "native-ttl " : "",
             (caps & PERSISTOR_CAP_NATIVE_QUERY) ? "native-query " : "",
             (caps & PERSISTOR_CAP_NO_UNLOAD) ? "no-unload " : "");
    size_t n = strlen(buf);
    if (n > 0)
        buf[n - 1] = '\0';
    return buf;
}

/* A JSON string body: escapes quotes, backslashes and control bytes. */
static void info_json_string(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

int cmd_health(const cli_globals *g, int argc, char **argv)
{
    bool json;
    int code = info_parse_json_flag(argc, argv, "health", &json);
    persistor *p;
    if (code != CLI_EXIT_OK || (code = cli_open(g, &p)) != CLI_EXIT_OK)
        return code;
    persistor_health health;
    persistor_error err = {0};
    int32_t rc = persistor_health_check(p, &health, &err);
    if (rc != PERSISTOR_OK) {
        persistor_close(p);
        return cli_fail(rc, &err);
    }
    bool all_ok = true;
    if (json)
        printf("{\"profile\":");
    if (json)
        info_json_string(persistor_profile_name(p));
    else
        printf("profile %s (%s)\n", persistor_profile_name(p), persistor_config_path(p));
    if (json)
        printf(",\"adapters\":[");
    for (size_t i = 0; i < health.count; i++) {
        const persistor_adapter_health *h = &health.adapters[i];
        char caps[96];
        all_ok = all_ok && h->status == PERSISTOR_OK;
        info_caps_text(h->capabilities, caps, sizeof caps);
        if (json) {
            printf("%s{\"adapter\":", i ? "," : "");
            info_json_string(h->label);
            printf(",\"type\":");
            info_json_string(h->type);
            printf(",\"version\":");
            info_json_string(h->version);
            printf(",\"status\":\"%s\",\"ok\":%s,\"latency_us\":%llu,\"capabilities\":",
                   persistor_rc_name(h->status), h->status == PERSISTOR_OK ? "true" : "false",
                   (unsigned long long)h->latency_us);
            info_json_string(caps);
            printf(",\"message\":");
            info_json_string(h->message);
            printf(",\"detail\":");
            info_json_string(h->detail);
            printf(",\"breaker\":\"%s\",\"breaker_open_ms\":%llu,\"journal_pending\":%llu,"
                   "\"durable\":%s}",
                   h->breaker, (unsigned long long)h->breaker_open_ms,
                   (unsigned long long)h->journal_pending, h->durable ? "true" : "false");
        } else {
            printf("  %-12s %-4s %8.3f ms  breaker %-10s %s %s  [%s]%s%s\n", h->label,
                   h->status == PERSISTOR_OK ? "ok" : "DOWN", (double)h->latency_us / 1000.0,
                   h->breaker, h->type, h->version, caps, h->message[0] ? "  " : "", h->message);
            if (h->detail[0] != '\0')
                printf("  %-12s %s\n", "", h->detail);
            if (h->breaker_open_ms > 0)
                printf("  %-12s not closed for %.1f s\n", "", (double)h->breaker_open_ms / 1000.0);
            if (h->journal_pending > 0)
                printf("  %-12s %llu write(s) journaled, waiting for replay to %s\n", "",
                       (unsigned long long)h->journal_pending, health.adapters[0].label);
        }
    }
    if (json) {
        printf("],\"degraded\":%s,\"durability\":\"%s\",\"ok\":%s}\n",
               health.degraded ? "true" : "false", health.durability, all_ok ? "true" : "false");
    } else {
        printf("durability %s%s\n", health.durability,
               strcmp(health.durability, "degraded") == 0
                   ? " (a fallback declared volatile: what it takes dies with the process)"
                   : "");
        if (health.degraded)
            printf("DEGRADED: the primary is not serving; a fallback answers and journals "
                   "writes for replay\n");
    }
    persistor_health_free(&health);
    persistor_close(p);
    return all_ok ? CLI_EXIT_OK : CLI_EXIT_STORAGE;
}

int cmd_stats(const cli_globals *g, int argc, char **argv)
{
    bool json;
    int code = info_parse_json_flag(argc, argv, "stats", &json);
    persistor *p;
    if (code != CLI_EXIT_OK || (code = cli_open(g, &p)) != CLI_EXIT_OK)
        return code;
    persistor_stats st;
    persistor_error err = {0};
    int32_t rc = persistor_stats_get(p, &st, &err);
    persistor_close(p);
    if (rc != PERSISTOR_OK)
        return cli_fail(rc, &err);
    if (json) {
        /* The seed's getStats() field names. */
        printf("{\"itemCount\":%llu,\"totalSize\":%llu,\"averageItemSize\":%.1f,"
               "\"adapterType\":",
               (unsigned long long)st.item_count, (unsigned long long)st.total_size,
               st.average_item_size);
        info_json_string(st.adapter_type);
        printf(",\"degraded\":%s}\n", st.degraded ? "true" : "false");
    } else {
        printf("items          %llu\n", (unsigned long long)st.item_count);
        printf("total size     %llu bytes\n", (unsigned long long)st.total_size);
        printf("average size   %.1f bytes\n", st.average_item_size);
        printf("adapter        %s\n", st.adapter_type);
    }
    if (st.degraded)
        cli_warn_degraded(st.adapter_type);
    return CLI_EXIT_OK;
}
