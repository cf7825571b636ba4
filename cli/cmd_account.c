/* cli/cmd_account.c: `busymirror account add|list|set|remove`, and sealing refresh tokens. */
#include "cli/cli.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/oauth.h"
#include "core/util.h"
#include "engine/engine.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Seals a refresh token for account name with the key file (created on first use). */
int bm_cli_seal_token(bm_cli_t *cli, const char *name, const char *token, unsigned char **out,
                      size_t *out_len)
{
    unsigned char key[BM_CRYPTO_KEY_LEN];
    char err[512], aad[BM_CRYPTO_AAD_MAX];
    int rc = bm_crypto_aad(BM_CRYPTO_REFRESH_TOKEN, name, aad, err, sizeof(err));
    if (rc == BM_OK)
        rc = bm_crypto_key_load(cli->cfg.store.key_file, true, key, err, sizeof(err));
    if (rc == BM_OK)
        rc = bm_crypto_seal(key, aad, token, strlen(token), out, out_len, err, sizeof(err));
    bm_crypto_wipe(key, sizeof(key));
    if (rc != BM_OK)
        bm_cli_print_error(NULL, err);
    return rc;
}

#define TOKEN_MAX BM_OAUTH_REFRESH_TOKEN_MAX

/* Reads a refresh token file: one line (one trailing newline, LF or CRLF, is
 * dropped) of printable ASCII without blanks, at most TOKEN_MAX characters.
 * *out is the caller's (wipe and free); err names the file and the problem. */
static int read_token_file(const char *path, char **out, char *err, size_t errlen)
{
    char buf[TOKEN_MAX + 3];
    size_t len = 0;
    struct stat sb;
    int rc = BM_OK;
    FILE *f = fopen(path, "rb");
    *out = NULL;
    if (f == NULL || fstat(fileno(f), &sb) != 0) {
        rc = bm_err(err, errlen, BM_EIO, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = bm_err(err, errlen, BM_EINVAL, "%s: cannot read: not a regular file", path);
        goto out;
    }
    len = fread(buf, 1, sizeof(buf), f);
    if (ferror(f)) {
        rc = bm_err(err, errlen, BM_EIO, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    if (len > 0 && buf[len - 1] == '\n')
        len -= len > 1 && buf[len - 2] == '\r' ? 2 : 1;
    for (size_t i = 0; i < len && rc == BM_OK; i++) {
        if (buf[i] == '\n')
            rc = bm_err(err, errlen, BM_EINVAL,
                        "%s: more than one line (expected the refresh token alone)", path);
        else if (buf[i] <= ' ' || buf[i] > '~')
            rc = bm_err(err, errlen, BM_EINVAL,
                        "%s: not one refresh token (byte %zu is a blank, a control character "
                        "or not ASCII)",
                        path, i + 1);
    }
    if (rc == BM_OK && len == 0)
        rc = bm_err(err, errlen, BM_EINVAL, "%s: empty (expected one refresh token)", path);
    if (rc == BM_OK && len > TOKEN_MAX)
        rc = bm_err(err, errlen, BM_EINVAL, "%s: longer than %d characters: not one refresh token",
                    path, TOKEN_MAX);
    if (rc == BM_OK)
        *out = bm_strndup(buf, len);
out:
    bm_crypto_wipe(buf, sizeof(buf));
    if (f != NULL)
        (void)fclose(f); /* read only: a failed close loses nothing */
    return rc;
}

/* What Google could call a user: local@domain within RFC 5321's 254 characters,
 * printable, no blanks. */
static bool email_ok(const char *s)
{
    size_t n = strlen(s);
    const char *at = strchr(s, '@');
    if (n < 3 || n > 254 || at == NULL || at == s || at[1] == '\0')
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return false;
    return true;
}

static int account_add(bm_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"name", required_argument, NULL, 'n'},
                                         {"refresh-token-file", required_argument, NULL, 'f'},
                                         {"email", required_argument, NULL, 'e'},
                                         {NULL, 0, NULL, 0}};
    const bm_cli_command_t *self = bm_cli_find("account");
    const char *name = NULL, *file = NULL, *email = NULL;
    char *token = NULL, err[512], quoted[2 * BM_NAME_MAX];
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    bm_store_t *st;
    int c, rc = BM_EXIT_OK;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
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
            return bm_cli_option_error(self, c, argv);
        }
    }
    if (name == NULL || file == NULL || optind != argc)
        return bm_cli_usage_error(self, "add needs --name NAME and --refresh-token-file FILE");
    if ((rc = bm_cli_name(self, "account", name)) != BM_EXIT_OK)
        return rc;
    if (email != NULL && !email_ok(email))
        return bm_cli_usage_error(self, "--email takes an address (NAME@DOMAIN, at most 254 "
                                        "characters, no blanks or control characters)");
    if (read_token_file(file, &token, err, sizeof(err)) != BM_OK) {
        fprintf(stderr, "busymirror account add: refresh token file %s\n", err);
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
        bm_cli_print_error("account", err);
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
    printf("account '%s' added; next: busymirror calendar discover --account-id %s\n", name,
           bm_cli_quote(name, quoted, sizeof(quoted)));
out:
    if (token != NULL) {
        bm_crypto_wipe(token, strlen(token));
        free(token);
    }
    free(sealed);
    return rc;
}

static int account_list(bm_cli_t *cli, int argc, char **argv)
{
    const bm_cli_command_t *self = bm_cli_find("account");
    bm_store_t *st;
    bm_account_t *a = NULL;
    bm_cli_json_t j = {0};
    size_t n = 0;
    bool json = false;
    char err[512];
    int rc;
    if ((rc = bm_cli_parse_json_only(self, argc, argv, &json)) != BM_EXIT_OK ||
        (rc = bm_cli_store(cli, &st)) != BM_EXIT_OK)
        return rc;
    if (bm_store_account_list(st, &a, &n, err, sizeof(err)) != BM_OK)
        goto fail;
    if (json) {
        bm_cli_json_begin(&j);
        bm_cli_json_open(&j, "accounts", true);
    } else {
        printf("%-20s %-32s %-9s %-12s %-8s %s\n", "NAME", "EMAIL", "CALENDARS", "STATE",
               "PRIORITY", "POLL");
    }
    for (size_t i = 0; i < n; i++) {
        bm_calendar_t *cals = NULL;
        size_t nc = 0;
        if (bm_store_calendar_list(st, a[i].id, NULL, false, &cals, &nc, err, sizeof(err)) != BM_OK)
            goto fail;
        bm_store_calendars_free(cals, nc);
        if (!json) {
            char poll[16] = "-", name[256], email[512]; /* poll 0: [sync] poll_interval */
            if (a[i].poll_interval > 0)
                snprintf(poll, sizeof(poll), "%d", a[i].poll_interval);
            printf("%-20s %-32s %-9zu %-12s %-8d %s\n", bm_cli_text(a[i].name, name, sizeof(name)),
                   a[i].email != NULL ? bm_cli_text(a[i].email, email, sizeof(email)) : "-", nc,
                   bm_cli_account_state(&a[i]), a[i].priority, poll);
            continue;
        }
        bm_cli_json_open(&j, NULL, false);
        bm_cli_json_str(&j, "name", a[i].name);
        bm_cli_json_str(&j, "email", a[i].email);
        bm_cli_json_int(&j, "calendars", (int64_t)nc);
        bm_cli_json_int(&j, "priority", a[i].priority);
        bm_cli_json_int(&j, "poll_interval", a[i].poll_interval);
        bm_cli_json_str(&j, "state", bm_cli_account_state(&a[i]));
        bm_cli_json_close(&j, false);
    }
    if (json) {
        bm_cli_json_close(&j, true);
        rc = bm_cli_json_end(&j, "account");
    }
    goto out;
fail:
    bm_cli_print_error(NULL, err);
    rc = BM_EXIT_FAIL;
out:
    bm_cli_json_dispose(&j);
    bm_store_accounts_free(a, n);
    return rc;
}

/* *out = arg when it is a whole number from min to max, else a usage error
 * naming --opt. */
static int parse_range(const bm_cli_command_t *self, const char *opt, const char *arg, long min,
                       long max, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || v < min || v > max)
        return bm_cli_usage_error(self, "--%s takes a number from %ld to %ld, not '%s'", opt, min,
                                  max, arg);
    *out = (int)v;
    return BM_EXIT_OK;
}

static int account_set(bm_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"account-id", required_argument, NULL, 'a'},
                                         {"priority", required_argument, NULL, 'p'},
                                         {"poll-interval", required_argument, NULL, 'i'},
                                         {NULL, 0, NULL, 0}};
    const bm_cli_command_t *self = bm_cli_find("account");
    const char *name = NULL;
    int priority = -1, interval = -1, c, rc = BM_EXIT_OK;
    bm_account_t acct = {0};
    char err[512];
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 'a')
            name = optarg;
        else if (c == 'p')
            rc = parse_range(self, "priority", optarg, 0, 100, &priority);
        else if (c == 'i')
            rc = parse_range(self, "poll-interval", optarg, 0, 86400, &interval);
        else
            return bm_cli_option_error(self, c, argv);
        if (rc != BM_EXIT_OK)
            return rc;
    }
    if (name == NULL || optind != argc || (priority < 0 && interval < 0))
        return bm_cli_usage_error(
            self, "set needs --account-id NAME and --priority P or --poll-interval S");
    if ((rc = bm_cli_account(cli, name, &acct)) != BM_EXIT_OK)
        return rc;
    if (bm_store_account_set_schedule(cli->store, acct.id, priority, interval, err, sizeof(err)) !=
        BM_OK) {
        bm_cli_print_error("account", err);
        rc = BM_EXIT_FAIL;
    } else {
        printf("account '%s': priority %d, poll interval %d s (0: [sync] poll_interval)\n", name,
               priority >= 0 ? priority : acct.priority,
               interval >= 0 ? interval : acct.poll_interval);
    }
    bm_account_dispose(&acct);
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
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
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
            return bm_cli_option_error(self, c, argv);
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
        bm_cli_print_error("account", err);
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
        return bm_cli_usage_error(self, "expected a subcommand: add, login, list, set, remove");
    const char *sub = argv[1];
    if (strcmp(sub, "add") == 0)
        return account_add(cli, argc - 1, argv + 1);
    if (strcmp(sub, "login") == 0)
        return bm_account_login(cli, argc - 1, argv + 1);
    if (strcmp(sub, "list") == 0)
        return account_list(cli, argc - 1, argv + 1);
    if (strcmp(sub, "remove") == 0)
        return account_remove(cli, argc - 1, argv + 1);
    if (strcmp(sub, "set") == 0)
        return account_set(cli, argc - 1, argv + 1);
    return bm_cli_usage_error(self, "unknown subcommand '%s'", sub);
}
