/* cli/cmd_reset.c: `busymirror reset`: remove every block from one calendar. */
#include "cli/cli.h"
#include "core/util.h"
#include "engine/engine.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* On a terminal, asks the user to type the calendar id; true when they did. */
static bool typed_confirmation(const char *gcal_id, size_t n)
{
    char line[1100];
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        return false;
    printf("Type the calendar id (%s) to delete these %zu blocks: ", gcal_id, n);
    fflush(stdout);
    if (fgets(line, sizeof(line), stdin) == NULL)
        return false;
    line[strcspn(line, "\r\n")] = '\0';
    return strcmp(line, gcal_id) == 0;
}

int bm_cmd_reset(bm_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"calendar-id", required_argument, NULL, 'c'},
                                         {"account-id", required_argument, NULL, 'a'},
                                         {"dry-run", no_argument, NULL, 'n'},
                                         {"confirm", no_argument, NULL, 'y'},
                                         {NULL, 0, NULL, 0}};
    const bm_cli_command_t *self = bm_cli_find("reset");
    const char *calendar = NULL, *account = NULL;
    bool dry_run = false, confirm = false;
    bm_calendar_t cal = {0};
    bm_engine_t *e = NULL;
    bm_found_block_t *found = NULL;
    size_t n = 0, failed = 0;
    char err[1024];
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
            dry_run = true;
            break;
        case 'y':
            confirm = true;
            break;
        default:
            return bm_cli_option_error(self, c, argv);
        }
    }
    if (calendar == NULL || optind != argc)
        return bm_cli_usage_error(self, "reset needs --calendar-id ID");
    if (dry_run && confirm)
        return bm_cli_conflict(self, "--dry-run", "--confirm");
    if ((rc = bm_cli_calendar(cli, calendar, account, &cal)) != BM_EXIT_OK)
        return rc;
    if ((rc = bm_cli_engine(cli, &e)) != BM_EXIT_OK)
        goto out;
    /* First look (writes nothing), then delete only with a confirmation. */
    if (bm_engine_reset_calendar(e, &cal, false, &found, &n, &failed, err, sizeof(err)) != BM_OK) {
        bm_cli_print_error("reset", err);
        rc = BM_EXIT_FAIL;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        printf("%s %s block %s %s .. %s%s\n", dry_run || !confirm ? "would delete" : "deleting",
               found[i].gcal_id, found[i].block_id, found[i].start ? found[i].start : "?",
               found[i].end ? found[i].end : "?", found[i].series ? " (series)" : "");
    if (dry_run) {
        printf("dry run: %zu blocks of busymirror in %s; nothing deleted\n", n, cal.gcal_id);
        goto out;
    }
    if (!confirm && !(n > 0 && typed_confirmation(cal.gcal_id, n))) {
        fprintf(stderr,
                "busymirror reset: %zu blocks would be deleted from %s; nothing was: "
                "run again with --confirm\n",
                n, cal.gcal_id);
        rc = BM_EXIT_FAIL;
        goto out;
    }
    bm_found_blocks_free(found, n);
    found = NULL;
    if (bm_engine_reset_calendar(e, &cal, true, &found, &n, &failed, err, sizeof(err)) != BM_OK) {
        bm_cli_print_error("reset", err);
        rc = BM_EXIT_FAIL;
        goto out;
    }
    printf("reset %s: %zu blocks deleted, %zu failed; its sync state is cleared "
           "(undo with: busymirror undo --last)\n",
           cal.gcal_id, n - failed, failed);
    if (cal.enabled) {
        char quoted[1100];
        printf("%s is still enabled: the next sync puts its blocks back (to stop mirroring it: "
               "busymirror calendar disable --calendar-id %s)\n",
               cal.gcal_id, bm_cli_quote(cal.gcal_id, quoted, sizeof(quoted)));
    }
    rc = failed > 0 ? BM_EXIT_FAIL : BM_EXIT_OK;
out:
    bm_found_blocks_free(found, n);
    bm_engine_free(e);
    bm_calendar_dispose(&cal);
    return rc;
}
