/* cli/cmd_audit.c: `busymirror audit list`: what each audited run deleted, by run id. */
#include "cli/cli.h"
#include "core/util.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define AUDIT_DEFAULT_LIMIT 20

static void print_text(const bm_audit_summary_t *r, size_t n)
{
    printf("%-6s %-20s %-14s %-6s %-6s %s\n", "RUN", "WHEN", "ACTION", "BLOCKS", "UNDONE",
           "CALENDARS");
    for (size_t i = 0; i < n; i++) {
        char when[40], action[64], id[1024];
        bm_cli_fmt_time(r[i].at, when, sizeof(when));
        printf("%-6lld %-20s %-14s %-6lld %-6lld ", (long long)r[i].run_id, when,
               bm_cli_text(r[i].action, action, sizeof(action)), (long long)r[i].blocks,
               (long long)r[i].undone);
        for (size_t k = 0; k < r[i].n_calendars; k++)
            printf("%s%s", k > 0 ? "," : "", bm_cli_text(r[i].calendars[k], id, sizeof(id)));
        printf("\n");
    }
    printf("%zu runs; undo one with: busymirror undo --audit-id RUN\n", n);
}

static int print_json(const bm_audit_summary_t *r, size_t n)
{
    bm_cli_json_t j;
    bm_cli_json_begin(&j);
    bm_cli_json_open(&j, "runs", true);
    for (size_t i = 0; i < n; i++) {
        bm_cli_json_open(&j, NULL, false);
        bm_cli_json_int(&j, "run_id", r[i].run_id);
        bm_cli_json_time(&j, "at", r[i].at);
        bm_cli_json_str(&j, "action", r[i].action);
        bm_cli_json_open(&j, "calendars", true);
        for (size_t k = 0; k < r[i].n_calendars; k++)
            bm_cli_json_str(&j, NULL, r[i].calendars[k]);
        bm_cli_json_close(&j, true);
        bm_cli_json_int(&j, "blocks", r[i].blocks);
        bm_cli_json_int(&j, "undone", r[i].undone);
        bm_cli_json_close(&j, false);
    }
    bm_cli_json_close(&j, true);
    return bm_cli_json_end(&j, "audit");
}

int bm_cmd_audit(bm_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"limit", required_argument, NULL, 'n'},
                                         {NULL, 0, NULL, 0}};
    const bm_cli_command_t *self = bm_cli_find("audit");
    bm_audit_summary_t *runs = NULL;
    size_t n = 0;
    long long limit = AUDIT_DEFAULT_LIMIT;
    bool json = false;
    bm_store_t *st;
    char err[512];
    int c, rc;
    if (argc < 2)
        return bm_cli_usage_error(self, "expected a subcommand: list");
    if (strcmp(argv[1], "list") != 0)
        return bm_cli_usage_error(self, "unknown subcommand '%s'", argv[1]);
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 'j')
            json = true;
        else if (c != 'n')
            return bm_cli_option_error(self, c, argv);
        else if ((rc = bm_cli_parse_count(self, "limit", optarg, BM_CLI_MAX_LIMIT, &limit)) !=
                 BM_EXIT_OK)
            return rc;
    }
    if (optind != argc)
        return bm_cli_usage_error(self, "unexpected argument '%s'", argv[optind]);
    if ((rc = bm_cli_store(cli, &st)) != BM_EXIT_OK)
        return rc;
    if (bm_store_audit_list(st, (size_t)limit, &runs, &n, err, sizeof(err)) != BM_OK) {
        bm_cli_print_error("audit", err);
        return BM_EXIT_FAIL;
    }
    if (json)
        rc = print_json(runs, n);
    else
        print_text(runs, n);
    bm_store_audit_summaries_free(runs, n);
    return rc;
}
