/* cli/cmd_calendar.c: `busymirror calendar discover|enable|disable|list`. */
#include "cli/cli.h"
#include "core/util.h"
#include "engine/engine.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct cal_args {
    const char *account;
    const char *calendar;
    const char *group;
    const char *role;
    const char *label; /* set --label */
    bool json;         /* list --json */
} cal_args_t;

static int parse(const bm_cli_command_t *self, int argc, char **argv, cal_args_t *a,
                 bool group_role)
{
    static const struct option opts[] = {{"account-id", required_argument, NULL, 'a'},
                                         {"calendar-id", required_argument, NULL, 'c'},
                                         {"group", required_argument, NULL, 'g'},
                                         {"role", required_argument, NULL, 'r'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"label", required_argument, NULL, 'l'},
                                         {NULL, 0, NULL, 0}};
    int c;
    memset(a, 0, sizeof(*a));
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            a->account = optarg;
            break;
        case 'c':
            a->calendar = optarg;
            break;
        case 'g':
        case 'r':
            if (!group_role)
                return bm_cli_usage_error(self, "%s takes no --%s", argv[0],
                                          c == 'g' ? "group" : "role");
            if (c == 'g')
                a->group = optarg;
            else
                a->role = optarg;
            break;
        case 'l':
            if (strcmp(argv[0], "set") != 0)
                return bm_cli_usage_error(self, "%s takes no --label", argv[0]);
            a->label = optarg;
            break;
        case 'j':
            if (strcmp(argv[0], "list") != 0)
                return bm_cli_usage_error(self, "%s takes no --json", argv[0]);
            a->json = true;
            break;
        default:
            return bm_cli_option_error(self, c, argv);
        }
    }
    if (optind != argc)
        return bm_cli_usage_error(self, "unexpected argument '%s'", argv[optind]);
    return -1;
}

/* The Google user of account id (its e-mail, learned from its primary calendar)
 * is another account too: the same calendars would be reached twice. */
static void warn_same_user(bm_cli_t *cli, int64_t id)
{
    bm_account_t acct = {0}, other = {0};
    char err[256], email[512], name[256];
    if (bm_store_account_get_by_id(cli->store, id, &acct, err, sizeof(err)) == BM_OK &&
        acct.email != NULL &&
        bm_store_account_find_email(cli->store, acct.email, id, &other, err, sizeof(err)) == BM_OK)
        fprintf(stderr,
                "busymirror: warning: %s is already account '%s': a calendar enabled through "
                "both is one calendar (enable it once per group)\n",
                bm_cli_text(acct.email, email, sizeof(email)),
                bm_cli_text(other.name, name, sizeof(name)));
    bm_account_dispose(&other);
    bm_account_dispose(&acct);
}

static int discover(bm_cli_t *cli, const bm_cli_command_t *self, cal_args_t *a)
{
    bm_account_t acct = {0};
    bm_engine_t *e = NULL;
    char err[512], text[512];
    size_t n = 0;
    if (a->account == NULL || a->calendar != NULL)
        return bm_cli_usage_error(self, "discover needs --account-id NAME");
    int rc = bm_cli_account(cli, a->account, &acct);
    if (rc == BM_EXIT_OK)
        rc = bm_cli_engine(cli, &e);
    if (rc != BM_EXIT_OK)
        goto out;
    if (bm_engine_discover(e, &acct, &n, err, sizeof(err)) != BM_OK) {
        fprintf(stderr, "busymirror calendar discover: %s\n", bm_cli_text(err, text, sizeof(text)));
        rc = BM_EXIT_FAIL;
        goto out;
    }
    printf("%zu calendar%s found for %s; enable them with busymirror calendar enable "
           "--calendar-id ID\n",
           n, n == 1 ? "" : "s", a->account);
    warn_same_user(cli, acct.id);
out:
    bm_engine_free(e);
    bm_account_dispose(&acct);
    return rc;
}

static int set_enabled(bm_cli_t *cli, const bm_cli_command_t *self, cal_args_t *a, bool enable)
{
    bm_calendar_t cal = {0}, now = {0};
    bm_engine_t *e = NULL;
    bm_role_t role = BM_ROLE_BOTH;
    char err[512], id[1024], group[256];
    if (a->calendar == NULL)
        return bm_cli_usage_error(self, "%s needs --calendar-id ID", enable ? "enable" : "disable");
    if (a->role != NULL && bm_role_parse(a->role, &role) != BM_OK)
        return bm_cli_usage_error(self, "--role must be both, source or target, not '%s'", a->role);
    if (a->group != NULL && bm_cli_name(self, "group", a->group) != BM_EXIT_OK)
        return BM_EXIT_USAGE;
    int rc = bm_cli_calendar(cli, a->calendar, a->account, &cal);
    if (rc != BM_EXIT_OK)
        return rc;
    if (a->role == NULL)
        role = cal.role;
    if ((rc = bm_cli_engine(cli, &e)) != BM_EXIT_OK)
        goto out;
    int r = bm_engine_set_membership(e, &cal, enable, a->group, role, err, sizeof(err));
    if (r == BM_OK)
        r = bm_store_calendar_get(cli->store, cal.id, &now, err, sizeof(err));
    if (r != BM_OK) {
        bm_cli_print_error("calendar", err);
        rc = r == BM_EEXIST ? BM_EXIT_USAGE : BM_EXIT_FAIL;
        goto out;
    }
    if (enable)
        printf("calendar %s enabled (group %s, role %s)\n",
               bm_cli_text(now.gcal_id, id, sizeof(id)),
               bm_cli_text(now.group_name, group, sizeof(group)), bm_role_name(now.role));
    else
        printf("calendar %s disabled\n", bm_cli_text(now.gcal_id, id, sizeof(id)));
    bm_engine_totals_t t;
    bm_engine_totals(e, &t);
    if (t.dead_letters > 0 || t.pending > 0) {
        fprintf(stderr,
                "busymirror: %lld of its blocks could not be deleted (%lld dead letters, %lld "
                "waiting): see busymirror status and dlq\n",
                (long long)(t.dead_letters + t.pending), (long long)t.dead_letters,
                (long long)t.pending);
        rc = BM_EXIT_FAIL;
    } else if (t.planned_deletes > 0 || !enable) {
        printf("%lld blocks removed\n", (long long)t.applied);
    }
out:
    bm_engine_free(e);
    bm_calendar_dispose(&now);
    bm_calendar_dispose(&cal);
    return rc;
}

/* A label: UTF-8 text without control characters, at most 100 bytes ('' clears). */
#define LABEL_MAX 100
static bool label_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    if (strlen(s) > LABEL_MAX)
        return false;
    for (; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return bm_config_valid_utf8(s);
}

static int set_label(bm_cli_t *cli, const bm_cli_command_t *self, cal_args_t *a)
{
    bm_calendar_t cal = {0};
    bm_store_t *st;
    char err[512];
    if (a->calendar == NULL || a->label == NULL)
        return bm_cli_usage_error(self, "set needs --calendar-id ID and --label TEXT");
    if (!label_ok(a->label))
        return bm_cli_usage_error(self,
                                  "--label takes UTF-8 text of at most %d bytes without "
                                  "control characters",
                                  LABEL_MAX);
    int rc = bm_cli_store(cli, &st);
    if (rc == BM_EXIT_OK)
        rc = bm_cli_calendar(cli, a->calendar, a->account, &cal);
    if (rc != BM_EXIT_OK)
        return rc;
    /* The label and a sync of the calendar, in one transaction: a running serve
     * replans its blocks (their title may show the label) within a worker's
     * look at the queue, not a poll interval later; without serve, the job
     * waits for the next one, and the next sync replans anyway (its plan key). */
    int r = bm_store_begin(st, err, sizeof(err));
    if (r == BM_OK)
        r = bm_store_calendar_set_label(st, cal.id, a->label[0] != '\0' ? a->label : NULL, err,
                                        sizeof(err));
    if (r == BM_OK && cal.enabled)
        r = bm_store_job_enqueue(st, cal.id, "label", bm_now_ms(), 0, 0, NULL, err, sizeof(err));
    if (r == BM_OK)
        r = bm_store_commit(st, err, sizeof(err));
    else
        bm_store_rollback(st);
    if (r != BM_OK) {
        bm_cli_print_error("calendar", err);
        rc = BM_EXIT_FAIL;
    } else {
        free(cal.label);
        cal.label = a->label[0] != '\0' ? bm_strdup(a->label) : NULL;
        char id[1024];
        printf("calendar %s: label \"%s\" (its blocks change title on its next sync, queued "
               "now for a running serve, when its group's block_summary uses {calendar})\n",
               bm_cli_text(cal.gcal_id, id, sizeof(id)), bm_calendar_label(&cal));
    }
    bm_calendar_dispose(&cal);
    return rc;
}

static void list_text(const bm_calendar_t *c, int64_t blocks)
{
    char when[32] = "never", acct[256], id[1024], summary[1024], label[1024], group[256],
         result[256];
    if (c->last_sync_at > 0) {
        time_t t = (time_t)c->last_sync_at;
        struct tm tm;
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
    }
    printf("%-12s %-44s %-20.20s %-20.20s %-8s %-7s %-7s %-5s %-20s blocks=%lld last=%s\n",
           bm_cli_text(c->account_name, acct, sizeof(acct)),
           bm_cli_text(c->gcal_id, id, sizeof(id)),
           c->summary != NULL ? bm_cli_text(c->summary, summary, sizeof(summary)) : "",
           bm_cli_text(bm_calendar_label(c), label, sizeof(label)),
           bm_cli_text(c->group_name, group, sizeof(group)), bm_role_name(c->role),
           c->enabled ? "yes" : "no", c->mode == BM_MODE_PUSH ? "push" : "poll", when,
           (long long)blocks,
           c->last_result != NULL ? bm_cli_text(c->last_result, result, sizeof(result)) : "-");
}

static void list_json(bm_cli_json_t *j, const bm_calendar_t *c, int64_t blocks)
{
    bm_cli_json_open(j, NULL, false);
    bm_cli_json_str(j, "account", c->account_name);
    bm_cli_json_str(j, "calendar", c->gcal_id);
    bm_cli_json_str(j, "summary", c->summary);
    bm_cli_json_str(j, "label", bm_calendar_label(c));
    bm_cli_json_str(j, "time_zone", c->time_zone);
    bm_cli_json_bool(j, "primary", c->primary);
    bm_cli_json_str(j, "group", c->group_name);
    bm_cli_json_str(j, "role", bm_role_name(c->role));
    bm_cli_json_bool(j, "enabled", c->enabled);
    bm_cli_json_str(j, "mode", c->mode == BM_MODE_PUSH ? "push" : "poll");
    bm_cli_json_time(j, "last_sync", c->last_sync_at);
    bm_cli_json_str(j, "last_result", c->last_result);
    bm_cli_json_int(j, "blocks", blocks);
    bm_cli_json_close(j, false);
}

static int list(bm_cli_t *cli, cal_args_t *a)
{
    bm_account_t acct = {0};
    bm_calendar_t *cals = NULL;
    bm_cli_json_t j = {0};
    size_t n = 0;
    char err[512];
    int rc = BM_EXIT_OK;
    bm_store_t *st;
    if ((rc = bm_cli_store(cli, &st)) != BM_EXIT_OK)
        return rc;
    if (a->account != NULL && (rc = bm_cli_account(cli, a->account, &acct)) != BM_EXIT_OK)
        return rc;
    if (bm_store_calendar_list(st, acct.id, a->calendar, false, &cals, &n, err, sizeof(err)) !=
        BM_OK) {
        bm_cli_print_error("calendar", err);
        rc = BM_EXIT_FAIL;
        goto out;
    }
    if (a->json) {
        bm_cli_json_begin(&j);
        bm_cli_json_open(&j, "calendars", true);
    } else {
        printf("%-12s %-44s %-20s %-20s %-8s %-7s %-7s %-5s %-20s %s\n", "ACCOUNT", "CALENDAR",
               "SUMMARY", "LABEL", "GROUP", "ROLE", "ENABLED", "MODE", "LAST SYNC", "STATE");
    }
    for (size_t i = 0; i < n; i++) {
        int64_t blocks = 0;
        if (bm_store_block_count(st, cals[i].id, &blocks, err, sizeof(err)) != BM_OK) {
            bm_cli_print_error("calendar", err);
            rc = BM_EXIT_FAIL;
            goto out;
        }
        if (a->json)
            list_json(&j, &cals[i], blocks);
        else
            list_text(&cals[i], blocks);
    }
    if (a->json) {
        bm_cli_json_close(&j, true);
        rc = bm_cli_json_end(&j, "calendar");
    }
out:
    bm_cli_json_dispose(&j);
    bm_store_calendars_free(cals, n);
    bm_account_dispose(&acct);
    return rc;
}

int bm_cmd_calendar(bm_cli_t *cli, int argc, char **argv)
{
    const bm_cli_command_t *self = bm_cli_find("calendar");
    cal_args_t a;
    if (argc < 2)
        return bm_cli_usage_error(self,
                                  "expected a subcommand: discover, enable, disable, set, list");
    const char *sub = argv[1];
    bool en = strcmp(sub, "enable") == 0;
    int rc = parse(self, argc - 1, argv + 1, &a, en);
    if (rc != -1)
        return rc;
    if (strcmp(sub, "discover") == 0)
        return discover(cli, self, &a);
    if (en || strcmp(sub, "disable") == 0)
        return set_enabled(cli, self, &a, en);
    if (strcmp(sub, "list") == 0)
        return list(cli, &a);
    if (strcmp(sub, "set") == 0)
        return set_label(cli, self, &a);
    return bm_cli_usage_error(self, "unknown subcommand '%s'", sub);
}
