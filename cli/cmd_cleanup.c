/* cli/cmd_cleanup.c: `busymirror cleanup`: orphaned blocks, unused mirror rows, old logs. */
#include "cli/cli.h"
#include "core/util.h"
#include "engine/engine.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

int bm_cmd_cleanup(bm_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"dry-run", no_argument, NULL, 'n'}, {NULL, 0, NULL, 0}};
    const bm_cli_command_t *self = bm_cli_find("cleanup");
    bool dry_run = false;
    bm_engine_t *e = NULL;
    bm_cleanup_report_t r = {0};
    char err[1024];
    int c, rc;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c != 'n')
            return bm_cli_option_error(self, c, argv);
        dry_run = true;
    }
    if (optind != argc)
        return bm_cli_usage_error(self, "unexpected argument '%s'", argv[optind]);
    if ((rc = bm_cli_engine(cli, &e)) != BM_EXIT_OK)
        return rc;
    if (bm_engine_cleanup(e, !dry_run, &r, err, sizeof(err)) != BM_OK) {
        bm_cli_print_error("cleanup", err);
        rc = BM_EXIT_FAIL;
    }
    for (size_t i = 0; i < r.n_orphans; i++)
        printf("%s orphaned block %s in %s\n", dry_run ? "would delete" : "deleted",
               r.orphans[i].block_id, r.orphans[i].gcal_id);
    printf("%s%zu orphaned blocks, %lld unused mirror rows, %lld sync-log and %lld audit "
           "entries older than %d days%s\n",
           dry_run ? "dry run: would remove " : "removed ", r.n_orphans, (long long)r.sources,
           (long long)r.sync_log, (long long)r.audit_log, cli->cfg.log.retention_days,
           !dry_run && r.n_orphans > 0 ? " (undo with: busymirror undo --last)" : "");
    bm_cleanup_report_dispose(&r);
    bm_engine_free(e);
    return rc;
}
