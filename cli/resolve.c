/* cli/resolve.c: turning --account-id / --calendar-id into store rows, with
 * errors that name the candidates; the engine and the lock files of commands. */
#include "cli/cli.h"
#include "core/util.h"
#include "engine/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

int bm_cli_account(bm_cli_t *cli, const char *name, bm_account_t *out)
{
    bm_store_t *st;
    char err[512];
    int rc = bm_cli_store(cli, &st);
    if (rc != BM_EXIT_OK)
        return rc;
    int r = bm_store_account_get(st, name, out, err, sizeof(err));
    if (r == BM_ENOTFOUND) {
        bm_account_t *all = NULL;
        size_t n = 0;
        if (bm_store_account_list(st, &all, &n, err, sizeof(err)) != BM_OK) {
            bm_cli_print_error(NULL, err);
            return BM_EXIT_FAIL;
        }
        char text[256];
        fprintf(stderr, "busymirror: unknown account '%s' (accounts:",
                bm_cli_text(name, text, sizeof(text)));
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %s", bm_cli_text(all[i].name, text, sizeof(text)));
        fprintf(stderr, "%s)\n", n == 0 ? " none yet: busymirror account add" : "");
        bm_store_accounts_free(all, n);
        return BM_EXIT_USAGE;
    }
    if (r != BM_OK) {
        bm_cli_print_error(NULL, err);
        return BM_EXIT_FAIL;
    }
    return BM_EXIT_OK;
}

int bm_cli_calendar(bm_cli_t *cli, const char *gcal_id, const char *account_name,
                    bm_calendar_t *out)
{
    bm_store_t *st;
    bm_account_t acct = {0};
    bm_calendar_t *cals = NULL;
    size_t n = 0;
    char err[512], id[1024], text[256];
    int rc = bm_cli_store(cli, &st);
    if (rc != BM_EXIT_OK)
        return rc;
    if (account_name != NULL && (rc = bm_cli_account(cli, account_name, &acct)) != BM_EXIT_OK)
        return rc;
    if (bm_store_calendar_list(st, acct.id, gcal_id, false, &cals, &n, err, sizeof(err)) != BM_OK) {
        bm_cli_print_error(NULL, err);
        rc = BM_EXIT_FAIL;
    } else if (n == 0) {
        fprintf(stderr,
                "busymirror: unknown calendar '%s'%s%s (busymirror calendar discover finds "
                "an account's calendars)\n",
                bm_cli_text(gcal_id, id, sizeof(id)), account_name != NULL ? " in account " : "",
                account_name != NULL ? bm_cli_text(account_name, text, sizeof(text)) : "");
        rc = BM_EXIT_USAGE;
    } else if (n > 1) {
        fprintf(stderr, "busymirror: calendar '%s' is in %zu accounts (",
                bm_cli_text(gcal_id, id, sizeof(id)), n);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "%s%s", i > 0 ? ", " : "",
                    bm_cli_text(cals[i].account_name, text, sizeof(text)));
        fprintf(stderr, "): choose one with --account-id\n");
        rc = BM_EXIT_USAGE;
    } else {
        *out = cals[0];
        memset(&cals[0], 0, sizeof(cals[0]));
    }
    bm_store_calendars_free(cals, n);
    bm_account_dispose(&acct);
    return rc;
}

int bm_cli_google(bm_cli_t *cli)
{
    const char *id = cli->cfg.google.client_id, *secret = cli->cfg.google.client_secret;
    bool no_id = id == NULL || id[0] == '\0', no_secret = secret == NULL || secret[0] == '\0';
    int rc = bm_cli_config(cli);
    if (rc != BM_EXIT_OK || (!no_id && !no_secret))
        return rc;
    fprintf(stderr,
            "busymirror: %s%s%s not set in %s (the OAuth client of type Desktop app, see "
            "README)\n",
            no_id ? "[google] client_id" : "", no_id && no_secret ? " and " : "",
            no_secret ? "[google] client_secret" : "", cli->config_path);
    return BM_EXIT_CONFIG;
}

int bm_cli_engine(bm_cli_t *cli, bm_engine_t **e)
{
    bm_store_t *st;
    char err[512];
    int rc = bm_cli_google(cli);
    if (rc == BM_EXIT_OK)
        rc = bm_cli_store(cli, &st);
    if (rc != BM_EXIT_OK)
        return rc;
    bm_engine_opts_t o = {.cfg = &cli->cfg};
    if (bm_engine_new(&o, st, e, err, sizeof(err)) != BM_OK) {
        bm_cli_print_error(NULL, err);
        return BM_EXIT_FAIL;
    }
    return BM_EXIT_OK;
}

const char *bm_cli_quote(const char *s, char *buf, size_t len)
{
    size_t n = 0;
    if (len < 3) /* room for '' and the NUL */
        return len > 0 ? (buf[0] = '\0', buf) : buf;
    buf[n++] = '\'';
    for (; *s != '\0' && n + 5 < len; s++) {
        if (*s == '\'') {
            memcpy(buf + n, "'\\''", 4);
            n += 4;
        } else {
            buf[n++] = *s;
        }
    }
    buf[n++] = '\'';
    buf[n] = '\0';
    return buf;
}

int bm_cli_name(const bm_cli_command_t *cmd, const char *what, const char *name)
{
    char err[256];
    if (bm_name_check(what, name, err, sizeof(err)) == BM_OK)
        return BM_EXIT_OK;
    return bm_cli_usage_error(cmd, "%s", err);
}

const char *bm_cli_account_state(const bm_account_t *a)
{
    if (a->state == BM_ACCOUNT_NEEDS_LOGIN)
        return "needs-login";
    return a->breaker_until > bm_now() ? "breaker-open" : "ok";
}

int bm_cli_lock(const char *db, const char *role, int *fd, char *err, size_t errlen)
{
    char *path = bm_sprintf("%s.%s.lock", db, role);
    int rc = BM_OK;
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (*fd < 0)
        rc = bm_err(err, errlen, BM_EIO, "%s: %s", path, strerror(errno));
    else if (flock(*fd, LOCK_EX | LOCK_NB) != 0)
        rc = errno == EWOULDBLOCK ? bm_err(err, errlen, BM_EBUSY,
                                           "another busymirror %s runs on %s (%s)", role, db, path)
                                  : bm_err(err, errlen, BM_EIO, "%s: %s", path, strerror(errno));
    free(path);
    return rc;
}
