/*
 * cli/account_login.c: `busymirror account login`, Google's installed-app flow
 * (core/oauth.h does PKCE, the loopback listener and the code exchange).
 *
 * The refresh token is sealed and stored (a new account, or a new token for an
 * existing one, which also clears needs-login). The e-mail is the id of the
 * account's primary calendar, and the calendar list is stored right away.
 * Secrets are registered with the log scrubber, never printed, and wiped from
 * memory when done.
 */
#include "cli/cli.h"
#include "core/crypto.h"
#include "core/gcal.h"
#include "core/log.h"
#include "core/oauth.h"
#include "core/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LOGIN_DEFAULT_TIMEOUT 300
#define LOGIN_MAX_CALENDARS   10000

/* ---------------------------------------------------------------- the account */

typedef struct found_cal {
    char *id, *summary, *time_zone, *access_role;
    bool primary;
} found_cal_t;

typedef struct found {
    found_cal_t *cals;
    size_t n, cap;
} found_t;

static int on_calendar(void *ud, const bm_gcal_calendar_t *c)
{
    found_t *f = ud;
    if (c->id == NULL)
        return BM_OK;
    if (f->n == LOGIN_MAX_CALENDARS)
        return BM_ETOOBIG;
    if (f->n == f->cap) {
        f->cap = f->cap != 0 ? f->cap * 2 : 16;
        f->cals = bm_realloc(f->cals, f->cap * sizeof(*f->cals));
    }
    f->cals[f->n++] = (found_cal_t){bm_strdup(c->id), bm_strdup(c->summary),
                                    bm_strdup(c->time_zone), bm_strdup(c->access_role), c->primary};
    return BM_OK;
}

static void found_dispose(found_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->cals[i].id);
        free(f->cals[i].summary);
        free(f->cals[i].time_zone);
        free(f->cals[i].access_role);
    }
    free(f->cals);
    memset(f, 0, sizeof(*f));
}

/* Stores the sealed token, the e-mail and the calendars in one transaction:
 * a new account, or the existing one (id > 0) with its token replaced. */
static int store_account(bm_store_t *st, const char *name, int64_t id, const unsigned char *sealed,
                         size_t sealed_len, const char *email, const found_t *f, char *err,
                         size_t errlen)
{
    int rc = bm_store_begin(st, err, errlen);
    if (rc != BM_OK)
        goto out;
    if (id > 0)
        rc = bm_store_account_set_token(st, id, sealed, sealed_len, err, errlen);
    else
        rc = bm_store_account_add(st, name, email, sealed, sealed_len, &id, err, errlen);
    if (rc == BM_OK && email != NULL)
        rc = bm_store_account_set_email(st, id, email, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < f->n; i++)
        rc = bm_store_calendar_upsert(st, id, f->cals[i].id, f->cals[i].summary,
                                      f->cals[i].time_zone, f->cals[i].access_role,
                                      f->cals[i].primary, NULL, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_commit(st, err, errlen);
    else
        bm_store_rollback(st);
out:
    return rc;
}

/* Prints "busymirror account login: <err>" with every registered secret scrubbed. */
static void say(const char *err)
{
    char clean[1024];
    bm_log_scrub(err, clean, sizeof(clean));
    bm_cli_print_error("account login", clean);
}

/* One piece on purpose: the login is one linear sequence (options, local checks,
 * browser, token, calendars, store) whose secrets and handles are all released
 * at the single exit label; split up, each part would have to hand them on. */
int bm_account_login(bm_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"name", required_argument, NULL, 'n'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"login-hint", required_argument, NULL, 'l'},
                                         {NULL, 0, NULL, 0}};
    const bm_cli_command_t *self = bm_cli_find("account");
    const bm_config_t *cfg = &cli->cfg;
    const char *name = NULL, *hint = NULL;
    long timeout = LOGIN_DEFAULT_TIMEOUT;
    bm_oauth_login_t login = {0};
    bm_gcal_t *g = NULL;
    bm_gcal_account_t ga;
    bool ga_init = false;
    bm_account_t acct = {0};
    found_t found = {0};
    char err[1024], *end, *token = NULL;
    const char *email = NULL;
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    int64_t id = 0;
    int c, rc = BM_EXIT_OK, r;
    bm_store_t *st;

    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            name = optarg;
            break;
        case 't':
            timeout = strtol(optarg, &end, 10);
            if (*end != '\0' || end == optarg || timeout <= 0 || timeout > 86400)
                return bm_cli_usage_error(self, "--timeout takes seconds from 1 to 86400, not '%s'",
                                          optarg);
            break;
        case 'l':
            hint = optarg;
            break;
        default:
            return bm_cli_option_error(self, c, argv);
        }
    }
    if (name == NULL || optind != argc)
        return bm_cli_usage_error(self, "login needs --name NAME");
    if ((rc = bm_cli_name(self, "account", name)) != BM_EXIT_OK ||
        (rc = bm_cli_google(cli)) != BM_EXIT_OK)
        return rc;

    /* Everything that can fail locally fails before the user is sent to a browser. */
    if ((rc = bm_cli_store(cli, &st)) != BM_EXIT_OK)
        goto out;
    rc = BM_EXIT_FAIL;
    r = bm_store_account_get(st, name, &acct, err, sizeof(err));
    if (r == BM_OK)
        id = acct.id;
    else if (r != BM_ENOTFOUND) {
        say(err);
        goto out;
    }
    bm_gcal_opts_t go = {.api_base_url = cfg->google.api_base_url,
                         .batch_url = cfg->google.batch_url,
                         .token_url = cfg->google.token_url,
                         .client_id = cfg->google.client_id,
                         .client_secret = cfg->google.client_secret};
    bm_oauth_login_opts_t lo = {
        .auth_url = cfg->google.auth_url, .client_id = cfg->google.client_id, .login_hint = hint};
    if (bm_gcal_new(&go, &g, err, sizeof(err)) != BM_OK ||
        bm_oauth_login_start(&lo, &login, err, sizeof(err)) != BM_OK) {
        say(err);
        goto out;
    }
    printf("Open this address in a browser and allow access:\n%s\n", login.url);
    if (fflush(stdout) != 0) {
        bm_err(err, sizeof(err), BM_EIO, "cannot write to stdout");
        say(err);
        goto out;
    }
    fprintf(stderr, "busymirror account login: waiting up to %ld s for the browser on port %d\n",
            timeout, login.port);
    if (bm_oauth_login_wait(&login, g, (int)timeout, &token, err, sizeof(err)) != BM_OK) {
        say(err);
        goto out;
    }

    /* The new token must work, and tells who logged in. */
    bm_gcal_account_init(&ga, token, name);
    ga_init = true;
    if (bm_gcal_list_calendars(g, &ga, on_calendar, &found, err, sizeof(err)) != BM_OK) {
        say(err);
        goto out;
    }
    for (size_t i = 0; i < found.n && email == NULL; i++)
        if (found.cals[i].primary)
            email = found.cals[i].id;
    if (id > 0 && acct.email != NULL && email != NULL && strcasecmp(acct.email, email) != 0) {
        bm_err(err, sizeof(err), BM_EINVAL,
               "account '%s' is %s, but the browser logged in as %s; nothing changed (log in as "
               "%s, or use another --name)",
               name, acct.email, email, acct.email);
        say(err);
        goto out;
    }
    if (bm_cli_seal_token(cli, name, token, &sealed, &sealed_len) != BM_OK)
        goto out; /* printed */
    if (store_account(st, name, id, sealed, sealed_len, email, &found, err, sizeof(err)) != BM_OK) {
        say(err);
        goto out;
    }
    printf("account '%s' logged in as %s; %zu calendar%s found\n", name,
           email != NULL ? email : "(no primary calendar)", found.n, found.n == 1 ? "" : "s");
    rc = BM_EXIT_OK;
out:
    bm_oauth_login_dispose(&login);
    if (ga_init)
        bm_gcal_account_dispose(&ga);
    bm_gcal_free(g);
    if (token != NULL) {
        bm_crypto_wipe(token, strlen(token));
        free(token);
    }
    free(sealed);
    found_dispose(&found);
    bm_account_dispose(&acct);
    return rc;
}
