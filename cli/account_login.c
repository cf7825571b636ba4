/* cli/account_login.c: `busymirror account login` (being written). */
#include "cli/cli.h"
#include "core/util.h"

int bm_account_login(bm_cli_t *cli, int argc, char **argv)
{
    fprintf(stderr, "busymirror: 'account login' is not available in this version yet\n");
    return BM_EXIT_UNAVAILABLE;
}
