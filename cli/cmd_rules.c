/* cli/cmd_rules.c: `busymirror rules check`: each group's effective rules and,
 * for one calendar, what they keep and skip of its events. Writes nothing. */
#include "cli/cli.h"
#include "core/util.h"
#include "engine/engine.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* The distinct groups of the enabled calendars, in order of first appearance
 * (calendars come sorted by account and id); *n of them, borrowed from cals. */
static size_t enabled_groups(const bm_calendar_t *cals, size_t n, const char **out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!cals[i].enabled || cals[i].group_name == NULL)
            continue;
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++)
            seen = strcmp(out[j], cals[i].group_name) == 0;
        if (!seen)
            out[k++] = cals[i].group_name;
    }
    return k;
}

static void print_groups(bm_cli_t *cli, const bm_calendar_t *cals, size_t n)
{
    const char **groups = bm_calloc(n + 1, sizeof(*groups));
    size_t k = enabled_groups(cals, n, groups);
    if (k == 0)
        printf(
            "no enabled calendar: enable one with busymirror calendar enable --calendar-id ID\n");
    for (size_t g = 0; g < k; g++) {
        const bm_rules_t *r = bm_config_rules(&cli->cfg, groups[g]);
        printf("%s[group %s]%s\n", g > 0 ? "\n" : "", groups[g],
               r->group == NULL ? " (no section: the defaults)" : "");
        bm_config_print_rules(&cli->cfg, r, stdout);
        printf("# calendars:");
        for (size_t i = 0; i < n; i++)
            if (cals[i].enabled && strcmp(cals[i].group_name, groups[g]) == 0)
                printf(" %s (label \"%s\")", cals[i].gcal_id, bm_calendar_label(&cals[i]));
        printf("\n");
    }
    free(groups);
}

static int check_calendar(bm_cli_t *cli, bm_store_t *st, const bm_calendar_t *cal)
{
    bm_engine_opts_t o = {.cfg = &cli->cfg, .dry_run = true}; /* keeps no access token */
    bm_engine_t *e = NULL;
    bm_rules_report_t r;
    char err[1024];
    int rc = BM_EXIT_OK;
    if (bm_engine_new(&o, st, &e, err, sizeof(err)) != BM_OK ||
        bm_engine_rules_check(e, cal, &r, err, sizeof(err)) != BM_OK) {
        char msg[1600];
        snprintf(msg, sizeof(msg), "%s: %s", cal->gcal_id, err);
        bm_cli_print_error("rules", msg); /* err may quote Google */
        rc = BM_EXIT_FAIL;
        goto out;
    }
    printf("\ncalendar %s (account %s, group %s%s): %lld events in the window\n", cal->gcal_id,
           cal->account_name, cal->group_name, cal->enabled ? "" : ", not enabled",
           (long long)r.listed);
    printf("  %-24s %lld\n", "kept", (long long)r.kept);
    for (size_t i = 0; i < r.n_skipped; i++) {
        char what[64];
        snprintf(what, sizeof(what), "skipped %s", r.skipped[i].reason);
        printf("  %-24s %lld\n", what, (long long)r.skipped[i].n);
    }
    if (r.occurrences_off > 0)
        printf("  %-24s %lld (occurrences of kept series, cancelled in their block series)\n",
               "skipped working_hours", (long long)r.occurrences_off);
    printf("  %-24s %lld (busymirror's own, never mirrored)\n", "blocks", (long long)r.blocks);
out:
    bm_engine_free(e);
    return rc;
}

int bm_cmd_rules(bm_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"calendar-id", required_argument, NULL, 'c'},
                                         {"account-id", required_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    const bm_cli_command_t *self = bm_cli_find("rules");
    const char *calendar = NULL, *account = NULL;
    bm_calendar_t *cals = NULL, cal = {0};
    size_t n = 0;
    bm_store_t *st;
    char err[512];
    int c, rc;
    if (argc < 2)
        return bm_cli_usage_error(self, "expected a subcommand: check");
    if (strcmp(argv[1], "check") != 0)
        return bm_cli_usage_error(self, "unknown subcommand '%s'", argv[1]);
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 'c')
            calendar = optarg;
        else if (c == 'a')
            account = optarg;
        else
            return bm_cli_option_error(self, c, argv);
    }
    if (optind != argc)
        return bm_cli_usage_error(self, "unexpected argument '%s'", argv[optind]);
    if (account != NULL && calendar == NULL)
        return bm_cli_usage_error(self, "--account-id goes with --calendar-id");
    if ((rc = bm_cli_store(cli, &st)) != BM_EXIT_OK)
        return rc;
    if (bm_store_calendar_list(st, 0, NULL, true, &cals, &n, err, sizeof(err)) != BM_OK) {
        bm_cli_print_error(NULL, err);
        return BM_EXIT_FAIL;
    }
    /* An unknown calendar (exit 2) or no Google client (78) fails before
     * anything is printed, so that stdout never holds half an answer. */
    if (calendar != NULL) {
        rc = bm_cli_google(cli);
        if (rc == BM_EXIT_OK)
            rc = bm_cli_calendar(cli, calendar, account, &cal);
    }
    if (rc == BM_EXIT_OK)
        print_groups(cli, cals, n);
    if (rc == BM_EXIT_OK && calendar != NULL)
        rc = check_calendar(cli, st, &cal);
    bm_calendar_dispose(&cal);
    bm_store_calendars_free(cals, n);
    return rc;
}
