/* cli/cmd_undo.c: `busymirror undo`: re-create what a reset, cleanup or removal deleted. */
#include "cli/cli.h"
#include "core/util.h"
#include "engine/engine.h"

#include <getopt.h>
#include <stdlib.h>

int bm_cmd_undo(bm_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"audit-id", required_argument, NULL, 'i'},
                                         {"last", no_argument, NULL, 'l'},
                                         {NULL, 0, NULL, 0}};
    const bm_cli_command_t *self = bm_cli_find("undo");
    long long id = -1;
    bool last = false;
    bm_engine_t *e = NULL;
    size_t restored = 0, failed = 0;
    int64_t run = 0;
    char err[1024], *end;
    int c, rc;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            id = strtoll(optarg, &end, 10);
            if (*end != '\0' || id <= 0)
                return bm_cli_usage_error(self, "--audit-id takes a run number, not '%s'", optarg);
            break;
        case 'l':
            last = true;
            break;
        default:
            return bm_cli_option_error(self, c, argv);
        }
    }
    if (id > 0 && last)
        return bm_cli_conflict(self, "--last", "--audit-id");
    if ((id > 0) == last || optind != argc)
        return bm_cli_usage_error(self, "undo needs --audit-id N or --last");
    if ((rc = bm_cli_engine(cli, &e)) != BM_EXIT_OK)
        return rc;
    int r = bm_engine_undo(e, last ? 0 : (int64_t)id, &run, &restored, &failed, err, sizeof(err));
    if (r != BM_OK) {
        bm_cli_print_error("undo", err);
        rc = r == BM_ENOTFOUND ? BM_EXIT_USAGE : BM_EXIT_FAIL;
    } else {
        printf("undo of run %lld: %zu blocks re-created, %zu could not be\n", (long long)run,
               restored, failed);
        rc = failed > 0 ? BM_EXIT_FAIL : BM_EXIT_OK;
    }
    bm_engine_free(e);
    return rc;
}
