/* cli/cmd_config.c: `busymirror config check|keys`. */
#include "cli/cli.h"
#include "core/util.h"

#include <string.h>

int bm_cmd_config(bm_cli_t *cli, int argc, char **argv)
{
    const bm_cli_command_t *self = bm_cli_find("config");
    if (argc != 2)
        return bm_cli_usage_error(self, "expected 'check' or 'keys'");
    if (strcmp(argv[1], "check") == 0) {
        char err[8192];
        int rc = bm_cli_config(cli);
        if (rc != BM_EXIT_OK)
            return rc;
        if (bm_config_check_paths(&cli->cfg, err, sizeof(err)) != BM_OK) {
            fprintf(stderr, "busymirror: %s: %s\n", cli->config_path, err);
            return BM_EXIT_CONFIG;
        }
        bm_config_print(&cli->cfg, stdout);
        printf("\n# effective batch size: %d ([engine] batch_size capped at a sixth of "
               "[google] user_quota)\n",
               bm_config_batch_size(&cli->cfg));
        return BM_EXIT_OK;
    }
    if (strcmp(argv[1], "keys") == 0) {
        bm_config_print_keys(stdout);
        return BM_EXIT_OK;
    }
    return bm_cli_usage_error(self, "unknown subcommand '%s'", argv[1]);
}
