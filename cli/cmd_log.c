/* cli/cmd_log.c: `busymirror log`: the recent syncs of each calendar, from the sync log. */
#include "cli/cli.h"
#include "core/util.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define LOG_DEFAULT_LIMIT 50

static void print_text(const bm_sync_log_entry_t *l, size_t n)
{
    printf("%-20s %-44s %-11s %6s %6s %6s %6s %5s %8s %-10s %s\n", "WHEN", "CALENDAR", "KIND",
           "LISTED", "INS", "UPD", "DEL", "CALLS", "MS", "RESULT", "ERROR");
    for (size_t i = 0; i < n; i++) {
        char when[40], id[1024], kind[64], result[256], error[1024];
        bm_cli_fmt_time(l[i].started_at, when, sizeof(when));
        printf("%-20s %-44s %-11s %6lld %6lld %6lld %6lld %5lld %8lld %-10s %s\n", when,
               l[i].gcal_id != NULL ? bm_cli_text(l[i].gcal_id, id, sizeof(id)) : "(removed)",
               l[i].kind != NULL ? bm_cli_text(l[i].kind, kind, sizeof(kind)) : "-",
               (long long)l[i].listed, (long long)l[i].inserted, (long long)l[i].updated,
               (long long)l[i].deleted, (long long)l[i].api_calls, (long long)l[i].duration_ms,
               l[i].result != NULL ? bm_cli_text(l[i].result, result, sizeof(result)) : "-",
               l[i].error != NULL ? bm_cli_text(l[i].error, error, sizeof(error)) : "");
    }
    printf("%zu syncs\n", n);
}

static int print_json(const bm_sync_log_entry_t *l, size_t n)
{
    bm_cli_json_t j;
    bm_cli_json_begin(&j);
    bm_cli_json_open(&j, "syncs", true);
    for (size_t i = 0; i < n; i++) {
        bm_cli_json_open(&j, NULL, false);
        bm_cli_json_int(&j, "id", l[i].id);
        bm_cli_json_time(&j, "started_at", l[i].started_at);
        bm_cli_json_str(&j, "account", l[i].account_name);
        bm_cli_json_str(&j, "calendar", l[i].gcal_id);
        bm_cli_json_str(&j, "kind", l[i].kind);
        bm_cli_json_int(&j, "listed", l[i].listed);
        bm_cli_json_int(&j, "inserted", l[i].inserted);
        bm_cli_json_int(&j, "updated", l[i].updated);
        bm_cli_json_int(&j, "deleted", l[i].deleted);
        bm_cli_json_int(&j, "api_calls", l[i].api_calls);
        bm_cli_json_int(&j, "duration_ms", l[i].duration_ms);
        bm_cli_json_str(&j, "result", l[i].result);
        bm_cli_json_str(&j, "error", l[i].error);
        bm_cli_json_close(&j, false);
    }
    bm_cli_json_close(&j, true);
    return bm_cli_json_end(&j, "log");
}

int bm_cmd_log(bm_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"calendar-id", required_argument, NULL, 'c'},
                                         {"account-id", required_argument, NULL, 'a'},
                                         {"limit", required_argument, NULL, 'n'},
                                         {"json", no_argument, NULL, 'j'},
                                         {NULL, 0, NULL, 0}};
    const bm_cli_command_t *self = bm_cli_find("log");
    const char *calendar = NULL, *account = NULL;
    bm_sync_log_entry_t *l = NULL;
    bm_calendar_t cal = {0};
    size_t n = 0;
    long long limit = LOG_DEFAULT_LIMIT;
    bool json = false;
    bm_store_t *st;
    char err[512];
    int c, rc;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            calendar = optarg;
            break;
        case 'a':
            account = optarg;
            break;
        case 'n':
            if ((rc = bm_cli_parse_count(self, "limit", optarg, BM_CLI_MAX_LIMIT, &limit)) !=
                BM_EXIT_OK)
                return rc;
            break;
        case 'j':
            json = true;
            break;
        default:
            return bm_cli_option_error(self, c, argv);
        }
    }
    if (optind != argc)
        return bm_cli_usage_error(self, "unexpected argument '%s'", argv[optind]);
    if (account != NULL && calendar == NULL)
        return bm_cli_usage_error(self, "--account-id only chooses between calendars of the same "
                                        "id: give --calendar-id ID too");
    if ((rc = bm_cli_store(cli, &st)) != BM_EXIT_OK)
        return rc;
    if (calendar != NULL && (rc = bm_cli_calendar(cli, calendar, account, &cal)) != BM_EXIT_OK)
        return rc;
    if (bm_store_sync_log_list(st, cal.id, (size_t)limit, &l, &n, err, sizeof(err)) != BM_OK) {
        bm_cli_print_error("log", err);
        rc = BM_EXIT_FAIL;
        goto out;
    }
    if (json)
        rc = print_json(l, n);
    else
        print_text(l, n);
out:
    bm_store_sync_log_entries_free(l, n);
    bm_calendar_dispose(&cal);
    return rc;
}
