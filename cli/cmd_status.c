/* cli/cmd_status.c: `busymirror status [--json]`, for people and monitoring. */
#include "cli/cli.h"
#include "core/util.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_gen.h>

static void fmt_time(int64_t t, char *buf, size_t len)
{
    if (t <= 0) {
        snprintf(buf, len, "never");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&tt, &tm));
}

static void gen_str(yajl_gen g, const char *k, const char *v)
{
    yajl_gen_string(g, (const unsigned char *)k, strlen(k));
    if (v == NULL)
        yajl_gen_null(g);
    else
        yajl_gen_string(g, (const unsigned char *)v, strlen(v));
}

static void gen_int(yajl_gen g, const char *k, int64_t v)
{
    yajl_gen_string(g, (const unsigned char *)k, strlen(k));
    yajl_gen_integer(g, (long long)v);
}

/* Why a calendar needs attention, or NULL when it is healthy. */
static const char *attention(const bm_calendar_t *c, const bm_health_t *h)
{
    /* Writes that failed or wait concern a calendar even once it is disabled. */
    if (h->dead_letters > 0)
        return "dead letters";
    if (h->retrying > 0)
        return "writes retrying";
    if (h->outbox > 0)
        return "writes pending";
    if (!c->enabled)
        return NULL;
    if (c->last_sync_at == 0)
        return "never synced";
    if (c->last_result != NULL && strcmp(c->last_result, "ok") != 0)
        return "last sync failed";
    return NULL;
}

int bm_cmd_status(bm_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    const bm_cli_command_t *self = bm_cli_find("status");
    bool json = false, unhealthy = false;
    bm_account_t *accts = NULL;
    bm_calendar_t *cals = NULL;
    size_t n_accts = 0, n_cals = 0;
    bm_store_t *st;
    yajl_gen g = NULL;
    char err[512], when[40], expiry[40], quoted[512];
    int c, rc;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c != 'j')
            return bm_cli_option_error(self, c, argv);
        json = true;
    }
    if (optind != argc)
        return bm_cli_usage_error(self, "unexpected argument '%s'", argv[optind]);
    if ((rc = bm_cli_store(cli, &st)) != BM_EXIT_OK)
        return rc;
    if (bm_store_account_list(st, &accts, &n_accts, err, sizeof(err)) != BM_OK ||
        bm_store_calendar_list(st, 0, NULL, false, &cals, &n_cals, err, sizeof(err)) != BM_OK) {
        fprintf(stderr, "busymirror status: %s\n", err);
        rc = BM_EXIT_FAIL;
        goto out;
    }
    if (json) {
        g = yajl_gen_alloc(NULL);
        yajl_gen_config(g, yajl_gen_beautify, 1);
        yajl_gen_map_open(g);
        yajl_gen_string(g, (const unsigned char *)"accounts", 8);
        yajl_gen_array_open(g);
    } else {
        printf("ACCOUNTS\n");
    }
    for (size_t i = 0; i < n_accts; i++) {
        const char *state = bm_cli_account_state(&accts[i]);
        unhealthy |= strcmp(state, "ok") != 0;
        fmt_time(accts[i].breaker_until, when, sizeof(when));
        if (json) {
            yajl_gen_map_open(g);
            gen_str(g, "name", accts[i].name);
            gen_str(g, "email", accts[i].email);
            gen_str(g, "state", state);
            gen_str(g, "breaker",
                    accts[i].breaker_until > bm_now() ? "open"
                    : accts[i].breaker_failures > 0   ? "half-open"
                                                      : "closed");
            gen_int(g, "breaker_failures", accts[i].breaker_failures);
            gen_str(g, "breaker_until", accts[i].breaker_until > bm_now() ? when : NULL);
            yajl_gen_map_close(g);
        } else {
            printf("  %-20s %-32s %s", accts[i].name, accts[i].email ? accts[i].email : "-", state);
            if (strcmp(state, "needs-login") == 0)
                printf(": busymirror account login --name %s",
                       bm_cli_quote(accts[i].name, quoted, sizeof(quoted)));
            else if (strcmp(state, "breaker-open") == 0)
                printf(" after %d failures, until %s", accts[i].breaker_failures, when);
            printf("\n");
        }
    }
    if (json) {
        yajl_gen_array_close(g);
        yajl_gen_string(g, (const unsigned char *)"calendars", 9);
        yajl_gen_array_open(g);
    } else {
        printf("CALENDARS\n");
    }
    for (size_t i = 0; i < n_cals; i++) {
        bm_health_t h = {0};
        const bm_calendar_t *cal = &cals[i];
        if (bm_store_calendar_health(st, cal->id, &h, err, sizeof(err)) != BM_OK) {
            fprintf(stderr, "busymirror status: %s\n", err);
            rc = BM_EXIT_FAIL;
            goto out;
        }
        const char *why = attention(cal, &h);
        unhealthy |= why != NULL;
        fmt_time(cal->last_sync_at, when, sizeof(when));
        fmt_time(h.channel_expiration / 1000, expiry, sizeof(expiry));
        const char *mode = cal->mode == BM_MODE_PUSH ? "push" : "poll";
        if (json) {
            yajl_gen_map_open(g);
            gen_str(g, "account", cal->account_name);
            gen_str(g, "calendar", cal->gcal_id);
            gen_str(g, "summary", cal->summary);
            gen_str(g, "group", cal->group_name);
            gen_str(g, "role", bm_role_name(cal->role));
            yajl_gen_string(g, (const unsigned char *)"enabled", 7);
            yajl_gen_bool(g, cal->enabled);
            gen_str(g, "mode", mode);
            gen_str(g, "last_sync", cal->last_sync_at > 0 ? when : NULL);
            gen_str(g, "last_result", cal->last_result);
            gen_str(g, "last_error", cal->last_error);
            gen_str(g, "channel_expiration", h.channel_expiration > 0 ? expiry : NULL);
            gen_int(g, "queued_jobs", h.jobs);
            gen_int(g, "pending_writes", h.outbox);
            gen_int(g, "retrying_writes", h.retrying);
            gen_int(g, "dead_letters", h.dead_letters);
            gen_int(g, "blocks", h.blocks);
            gen_str(g, "attention", why);
            yajl_gen_map_close(g);
        } else if (cal->enabled || why != NULL) {
            printf("  %-44s account=%s mode=%s last=%s (%s) channel=%s jobs=%lld pending=%lld "
                   "retrying=%lld dead=%lld blocks=%lld%s%s\n",
                   cal->gcal_id, cal->account_name, mode, when,
                   cal->last_result != NULL ? cal->last_result : "-",
                   h.channel_expiration > 0 ? expiry : "none", (long long)h.jobs,
                   (long long)h.outbox, (long long)h.retrying, (long long)h.dead_letters,
                   (long long)h.blocks, why != NULL ? "  ATTENTION: " : "", why != NULL ? why : "");
        }
    }
    if (json) {
        yajl_gen_array_close(g);
        yajl_gen_string(g, (const unsigned char *)"healthy", 7);
        yajl_gen_bool(g, !unhealthy);
        yajl_gen_map_close(g);
        const unsigned char *buf;
        size_t len;
        yajl_gen_get_buf(g, &buf, &len);
        fwrite(buf, 1, len, stdout);
    } else {
        printf("%s\n", unhealthy ? "needs attention" : "healthy");
    }
    rc = unhealthy ? BM_EXIT_FAIL : BM_EXIT_OK;
out:
    if (g != NULL)
        yajl_gen_free(g);
    bm_store_accounts_free(accts, n_accts);
    bm_store_calendars_free(cals, n_cals);
    return rc;
}
