/* cli/cmd_status.c: `busymirror status [--json]`, for people and monitoring. */
#include "cli/cli.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

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

/* One account's line or JSON object (j non-NULL); whether it is healthy. */
static bool print_account(const bm_account_t *a, bm_cli_json_t *j)
{
    char when[40], quoted[512], name[256], email[512];
    const char *state = bm_cli_account_state(a);
    bm_cli_fmt_time(a->breaker_until, when, sizeof(when));
    if (j != NULL) {
        bm_cli_json_open(j, NULL, false);
        bm_cli_json_str(j, "name", a->name);
        bm_cli_json_str(j, "email", a->email);
        bm_cli_json_str(j, "state", state);
        bm_cli_json_str(j, "breaker",
                        a->breaker_until > bm_now() ? "open"
                        : a->breaker_failures > 0   ? "half-open"
                                                    : "closed");
        bm_cli_json_int(j, "breaker_failures", a->breaker_failures);
        bm_cli_json_str(j, "breaker_until", a->breaker_until > bm_now() ? when : NULL);
        bm_cli_json_close(j, false);
    } else {
        printf("  %-20s %-32s %s", bm_cli_text(a->name, name, sizeof(name)),
               a->email ? bm_cli_text(a->email, email, sizeof(email)) : "-", state);
        if (strcmp(state, "needs-login") == 0)
            printf(": busymirror account login --name %s",
                   bm_cli_quote(a->name, quoted, sizeof(quoted)));
        else if (strcmp(state, "breaker-open") == 0)
            printf(" after %d failures, until %s", a->breaker_failures, when);
        printf("\n");
    }
    return strcmp(state, "ok") == 0;
}

/* Whether cal hears of its changes by push: "on", "refused", "off" (no
 * [gateway] public_url) or "pending" (serve has not watched it yet); in text,
 * with the reason and the next try ("refused (webhookUrlUnauthorized) retry in
 * 4 min"). */
static const char *push_state(const bm_calendar_t *cal, bool have_url, char *text, size_t len)
{
    const char *state = !have_url                    ? "off"
                        : cal->watch_refused != NULL ? "refused"
                        : cal->mode == BM_MODE_PUSH  ? "on"
                                                     : "pending";
    int64_t wait_s = (cal->watch_retry_at - bm_now_ms() + 999) / 1000;
    char why[256]; /* Google's reason */
    const char *refused = bm_cli_text(cal->watch_refused, why, sizeof(why));
    if (!have_url)
        snprintf(text, len, "off (no public_url)");
    else if (cal->watch_refused != NULL && wait_s > 0)
        snprintf(text, len, "refused (%s) retry in %lld min", refused,
                 (long long)(wait_s + 59) / 60);
    else if (cal->watch_refused != NULL)
        snprintf(text, len, "refused (%s) retry now", refused);
    else
        snprintf(text, len, "%s", state);
    return state;
}

/* One calendar's line or JSON object (j non-NULL); whether it is healthy. */
static bool print_calendar(const bm_calendar_t *cal, const bm_health_t *h, bool have_url,
                           bm_cli_json_t *j)
{
    char push[384], retry[40];
    char when[40], expiry[40], id[1024], acct[256], result[256];
    const char *why = attention(cal, h);
    bm_cli_fmt_time(cal->last_sync_at, when, sizeof(when));
    bm_cli_fmt_time(h->channel_expiration / 1000, expiry, sizeof(expiry));
    const char *mode = cal->mode == BM_MODE_PUSH ? "push" : "poll";
    const char *push_st = push_state(cal, have_url, push, sizeof(push));
    bm_cli_fmt_time(cal->watch_retry_at / 1000, retry, sizeof(retry));
    if (j != NULL) {
        bm_cli_json_open(j, NULL, false);
        bm_cli_json_str(j, "account", cal->account_name);
        bm_cli_json_str(j, "calendar", cal->gcal_id);
        bm_cli_json_str(j, "summary", cal->summary);
        bm_cli_json_str(j, "group", cal->group_name);
        bm_cli_json_str(j, "role", bm_role_name(cal->role));
        bm_cli_json_bool(j, "enabled", cal->enabled);
        bm_cli_json_str(j, "mode", mode);
        bm_cli_json_str(j, "push", cal->enabled ? push_st : NULL);
        bm_cli_json_str(j, "push_refused", cal->watch_refused);
        bm_cli_json_str(j, "push_retry_at", cal->watch_refused != NULL ? retry : NULL);
        bm_cli_json_str(j, "last_sync", cal->last_sync_at > 0 ? when : NULL);
        bm_cli_json_str(j, "last_result", cal->last_result);
        bm_cli_json_str(j, "last_error", cal->last_error);
        bm_cli_json_str(j, "channel_expiration", h->channel_expiration > 0 ? expiry : NULL);
        bm_cli_json_int(j, "queued_jobs", h->jobs);
        bm_cli_json_int(j, "pending_writes", h->outbox);
        bm_cli_json_int(j, "retrying_writes", h->retrying);
        bm_cli_json_int(j, "dead_letters", h->dead_letters);
        bm_cli_json_int(j, "blocks", h->blocks);
        bm_cli_json_str(j, "attention", why);
        bm_cli_json_close(j, false);
    } else if (cal->enabled || why != NULL) {
        printf("  %-44s account=%s mode=%s push=%s last=%s (%s) channel=%s jobs=%lld pending=%lld "
               "retrying=%lld dead=%lld blocks=%lld%s%s\n",
               bm_cli_text(cal->gcal_id, id, sizeof(id)),
               bm_cli_text(cal->account_name, acct, sizeof(acct)), mode, cal->enabled ? push : "-",
               when,
               cal->last_result != NULL ? bm_cli_text(cal->last_result, result, sizeof(result))
                                        : "-",
               h->channel_expiration > 0 ? expiry : "none", (long long)h->jobs,
               (long long)h->outbox, (long long)h->retrying, (long long)h->dead_letters,
               (long long)h->blocks, why != NULL ? "  ATTENTION: " : "", why != NULL ? why : "");
    }
    return why == NULL;
}

int bm_cmd_status(bm_cli_t *cli, int argc, char **argv)
{
    const bm_cli_command_t *self = bm_cli_find("status");
    bool json = false, unhealthy = false;
    bm_account_t *accts = NULL;
    bm_calendar_t *cals = NULL;
    size_t n_accts = 0, n_cals = 0;
    bm_store_t *st;
    bm_cli_json_t j = {0};
    char err[512];
    int rc;
    if ((rc = bm_cli_parse_json_only(self, argc, argv, &json)) != BM_EXIT_OK ||
        (rc = bm_cli_store(cli, &st)) != BM_EXIT_OK)
        return rc;
    if (bm_store_account_list(st, &accts, &n_accts, err, sizeof(err)) != BM_OK ||
        bm_store_calendar_list(st, 0, NULL, false, &cals, &n_cals, err, sizeof(err)) != BM_OK) {
        bm_cli_print_error("status", err);
        rc = BM_EXIT_FAIL;
        goto out;
    }
    if (json) {
        bm_cli_json_begin(&j);
        bm_cli_json_open(&j, "accounts", true);
    } else {
        printf("ACCOUNTS\n");
    }
    for (size_t i = 0; i < n_accts; i++)
        unhealthy |= !print_account(&accts[i], json ? &j : NULL);
    if (json) {
        bm_cli_json_close(&j, true);
        bm_cli_json_open(&j, "calendars", true);
    } else {
        printf("CALENDARS\n");
    }
    for (size_t i = 0; i < n_cals; i++) {
        bm_health_t h = {0};
        const bm_calendar_t *cal = &cals[i];
        if (bm_store_calendar_health(st, cal->id, &h, err, sizeof(err)) != BM_OK) {
            bm_cli_print_error("status", err);
            rc = BM_EXIT_FAIL;
            goto out;
        }
        unhealthy |=
            !print_calendar(cal, &h, cli->cfg.gateway.public_url != NULL, json ? &j : NULL);
    }
    if (json) {
        bm_cli_json_close(&j, true);
        bm_cli_json_bool(&j, "healthy", !unhealthy);
        if ((rc = bm_cli_json_end(&j, "status")) != BM_EXIT_OK)
            goto out;
    } else {
        printf("%s\n", unhealthy ? "needs attention" : "healthy");
    }
    rc = unhealthy ? BM_EXIT_FAIL : BM_EXIT_OK;
out:
    bm_cli_json_dispose(&j);
    bm_store_accounts_free(accts, n_accts);
    bm_store_calendars_free(cals, n_cals);
    return rc;
}
