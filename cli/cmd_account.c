/* cli/cmd_account.c: `busymirror account add|list|remove`, and sealing refresh tokens. */
#include "cli/cli.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/engine.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* Seals a refresh token for account name with the key file (created on first use). */
int bm_cli_seal_token(bm_cli_t *cli, const char *name, const char *token, unsigned char **out,
                      size_t *out_len)
{
    unsigned char key[BM_CRYPTO_KEY_LEN];
    char err[512], aad[300];
    int rc = bm_crypto_key_load(cli->cfg.store.key_file, true, key, err, sizeof(err));
    snprintf(aad, sizeof(aad), "account:%s", name);
    if (rc == BM_OK)
        rc = bm_crypto_seal(key, aad, token, strlen(token), out, out_len, err, sizeof(err));
    bm_crypto_wipe(key, sizeof(key));
    if (rc != BM_OK)
        fprintf(stderr, "busymirror: %s\n", err);
    return rc;
}

static int account_add(bm_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"name", required_argument, NULL, 'n'},
                                         {"refresh-token-file", required_argument, NULL, 'f'},
                                         {"email", required_argument, NULL, 'e'},
                                         {NULL, 0, NULL, 0}};
    const bm_cli_command_t *self = bm_cli_find("account");
    const char *name = NULL, *file = NULL, *email = NULL;
    char *token = NULL, err[512];
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    bm_store_t *st;
    int c, rc = BM_EXIT_OK;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            name = optarg;
            break;
        case 'f':
            file = optarg;
            break;
        case 'e':
            email = optarg;
            break;
        default:
            return bm_cli_usage_error(self, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (name == NULL || file == NULL || optind != argc)
        return bm_cli_usage_error(self, "add needs --name NAME and --refresh-token-file FILE");
    if (bm_read_file(file, 4096, &token, err, sizeof(err)) != BM_OK || token[0] == '\0') {
        fprintf(stderr, "busymirror account: %s\n",
                token != NULL ? "empty refresh token file" : err);
        rc = BM_EXIT_USAGE;
        goto out;
    }
    bm_log_add_secret(token);
    rc = bm_cli_store(cli, &st);
    if (rc != BM_EXIT_OK)
        goto out;
    if (bm_cli_seal_token(cli, name, token, &sealed, &sealed_len) != BM_OK) {
        rc = BM_EXIT_FAIL;
        goto out;
    }
    int64_t id = 0;
    int r = bm_store_account_add(st, name, email, sealed, sealed_len, &id, err, sizeof(err));
    if (r != BM_OK) {
        fprintf(stderr, "busymirror account: %s\n", err);
        rc = r == BM_EEXIST ? BM_EXIT_USAGE : BM_EXIT_FAIL;
        goto out;
    }
    /* Without --email the address is learned (and checked) by calendar discover. */
    bm_account_t other = {0};
    if (email != NULL &&
        bm_store_account_find_email(st, email, id, &other, err, sizeof(err)) == BM_OK)
        fprintf(stderr,
                "busymirror account: warning: %s is already account '%s': a calendar enabled "
                "through both is one calendar (enable it once per group)\n",
                email, other.name);
    bm_account_dispose(&other);
    printf("account '%s' added; next: busymirror calendar discover --account-id %s\n", name, name);
out:
    if (token != NULL) {
        bm_crypto_wipe(token, strlen(token));
        free(token);
    }
    free(sealed);
    return rc;
}

static int account_list(bm_cli_t *cli)
{
    bm_store_t *st;
    bm_account_t *a = NULL;
    size_t n = 0;
    char err[512];
    int rc = bm_cli_store(cli, &st);
    if (rc != BM_EXIT_OK)
        return rc;
    if (bm_store_account_list(st, &a, &n, err, sizeof(err)) != BM_OK)
        goto fail;
    printf("%-20s %-32s %-9s %s\n", "NAME", "EMAIL", "CALENDARS", "STATE");
    for (size_t i = 0; i < n; i++) {
        bm_calendar_t *cals = NULL;
        size_t nc = 0;
        if (bm_store_calendar_list(st, a[i].id, NULL, false, &cals, &nc, err, sizeof(err)) != BM_OK)
            goto fail;
        printf("%-20s %-32s %-9zu %s\n", a[i].name, a[i].email != NULL ? a[i].email : "-", nc,
               bm_cli_account_state(&a[i]));
        bm_store_calendars_free(cals, nc);
    }
    goto out;
fail:
    fprintf(stderr, "busymirror: %s\n", err);
    rc = BM_EXIT_FAIL;
out:
    bm_store_accounts_free(a, n);
    return rc;
}

static int account_remove(bm_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"account-id", required_argument, NULL, 'a'},
                                         {"keep-blocks", no_argument, NULL, 'k'},
                                         {"confirm", no_argument, NULL, 'y'},
                                         {NULL, 0, NULL, 0}};
    const bm_cli_command_t *self = bm_cli_find("account");
    const char *name = NULL;
    bool keep = false, confirm = false;
    bm_account_t acct = {0};
    bm_engine_t *e = NULL;
    size_t deleted = 0;
    char err[1024];
    int c, rc;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            name = optarg;
            break;
        case 'k':
            keep = true;
            break;
        case 'y':
            confirm = true;
            break;
        default:
            return bm_cli_usage_error(self, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (name == NULL || optind != argc)
        return bm_cli_usage_error(self, "remove needs --account-id NAME");
    if ((rc = bm_cli_account(cli, name, &acct)) != BM_EXIT_OK)
        return rc;
    if (!confirm) {
        fprintf(stderr,
                "busymirror account: removing '%s' %s; nothing done: run again with --confirm\n",
                name,
                keep ? "keeps its blocks in Google"
                     : "first deletes the blocks in its calendars and those made from them");
        rc = BM_EXIT_FAIL;
        goto out;
    }
    if ((rc = bm_cli_engine(cli, &e)) != BM_EXIT_OK)
        goto out;
    if (bm_engine_remove_account(e, &acct, keep, &deleted, err, sizeof(err)) != BM_OK) {
        fprintf(stderr, "busymirror account: %s\n", err);
        rc = BM_EXIT_FAIL;
        goto out;
    }
    printf("account '%s' removed; %zu blocks deleted%s\n", name, deleted,
           keep ? " (its blocks were kept)" : " (undo with: busymirror undo --last)");
out:
    bm_engine_free(e);
    bm_account_dispose(&acct);
    return rc;
}

int bm_cmd_account(bm_cli_t *cli, int argc, char **argv)
{
    const bm_cli_command_t *self = bm_cli_find("account");
    if (argc < 2)
        return bm_cli_usage_error(self, "expected a subcommand: add, login, list, remove");
    const char *sub = argv[1];
    if (strcmp(sub, "add") == 0)
        return account_add(cli, argc - 1, argv + 1);
    if (strcmp(sub, "login") == 0)
        return bm_account_login(cli, argc - 1, argv + 1);
    if (strcmp(sub, "list") == 0 && argc == 2)
        return account_list(cli);
    if (strcmp(sub, "remove") == 0)
        return account_remove(cli, argc - 1, argv + 1);
    return bm_cli_usage_error(self, "unknown subcommand '%s'", sub);
}
