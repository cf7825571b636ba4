/*
 * cli/cli.h: the busymirror command line. Each command is a function that
 * parses its own options (getopt_long) and returns a process exit code; the
 * work itself is done by engine/ and core/. Where each command lives:
 *
 *   cli/main.c           global options, the command table, dispatch;
 *   cli/cmd_serve.c      serve
 *   cli/cmd_poll.c       poll (cron)
 *   cli/resolve.c        --account-id / --calendar-id lookups, the engine
 *   cli/cmd_sync.c       sync
 *   cli/cmd_reset.c      reset
 *   cli/cmd_cleanup.c    cleanup
 *   cli/cmd_undo.c       undo
 *   cli/cmd_account.c    account add|list|set|remove
 *   cli/account_login.c  account login
 *   cli/cmd_calendar.c   calendar discover|enable|disable|set|list
 *   cli/cmd_rules.c      rules check
 *   cli/cmd_status.c     status
 *   cli/cmd_dlq.c        dlq list|retry|purge
 *   cli/cmd_config.c     config check|keys
 *   cli/cmd_audit.c      audit list
 *   cli/cmd_log.c        log
 *   cli/output.c         times and JSON documents, printed alike by every command
 */
#ifndef BM_CLI_CLI_H
#define BM_CLI_CLI_H

#include "core/config.h"
#include "core/store.h"

#include <stdio.h>
#include <yajl/yajl_gen.h>

typedef struct bm_cli {
    bm_config_t cfg;
    const char *config_path; /* NULL: none given nor found */
    bm_store_t *store;       /* opened on first use by bm_cli_store() */
    const char *prog;
    char found_path[4096]; /* a default file found by main(), when config_path is it */
    char looked[8192];     /* where main() looked, for bm_cli_config()'s message */
} bm_cli_t;

typedef struct bm_cli_command {
    const char *name;
    int (*run)(bm_cli_t *cli, int argc, char **argv);
    const char *summary;
    const char *usage; /* options, one per line, printed by --help */
} bm_cli_command_t;

/* BM_EXIT_OK when a config file was read; else prints where busymirror looked and
 * returns BM_EXIT_CONFIG. Every command that uses the configuration calls it. */
int bm_cli_config(bm_cli_t *cli);
/* Opens the store named by the config (exit code on failure, message printed;
 * BM_EXIT_CONFIG without a config file). */
int bm_cli_store(bm_cli_t *cli, bm_store_t **out);
/* Prints "busymirror COMMAND: <message>" and a hint to stderr; returns BM_EXIT_USAGE. */
int bm_cli_usage_error(const bm_cli_command_t *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* For getopt_long with an optstring starting with ':': one usage error for the
 * option that getopt returned c (':' missing argument, '?' unknown) for. */
int bm_cli_option_error(const bm_cli_command_t *cmd, int c, char **argv);
/* A usage error naming two options that cannot go together. */
int bm_cli_conflict(const bm_cli_command_t *cmd, const char *a, const char *b);
/* --limit N and the like: *out = arg when it is a whole number from 1 to max,
 * else a usage error naming --opt (its exit code). */
#define BM_CLI_MAX_LIMIT 100000
int bm_cli_parse_count(const bm_cli_command_t *cmd, const char *opt, const char *arg, long long max,
                       long long *out);
/* Parses the options of a command (or subcommand, argv[0]) whose only option
 * is --json: BM_EXIT_OK with *json set, or a usage error (its exit code). */
int bm_cli_parse_json_only(const bm_cli_command_t *cmd, int argc, char **argv, bool *json);
/* Prints a command's help to f. */
void bm_cli_print_command_help(const bm_cli_command_t *cmd, FILE *f);
const bm_cli_command_t *bm_cli_find(const char *name);

/* Looks up an account by name / a calendar by Google id (and account name, or
 * NULL). On failure prints an error naming the candidates and returns the exit
 * code (2 for unknown or ambiguous ids); the row is the caller's to dispose. */
int bm_cli_account(bm_cli_t *cli, const char *name, bm_account_t *out);
int bm_cli_calendar(bm_cli_t *cli, const char *gcal_id, const char *account_name,
                    bm_calendar_t *out);
/* s quoted for a POSIX shell ('...', a ' inside as '\''), so a printed hint pastes
 * as it is; written into buf (truncated to len), which is returned. */
const char *bm_cli_quote(const char *s, char *buf, size_t len);
/* Checks an account name (what = "account") or group name with bm_name_check;
 * prints the problem and returns BM_EXIT_USAGE when it is not one. */
int bm_cli_name(const bm_cli_command_t *cmd, const char *what, const char *name);
/* "ok", "needs-login" or "breaker-open". */
const char *bm_cli_account_state(const bm_account_t *a);
/* BM_EXIT_OK when [google] client_id and client_secret are set; else prints
 * which is missing and returns BM_EXIT_CONFIG (before anything calls Google). */
int bm_cli_google(bm_cli_t *cli);
/* A sync engine on the CLI's store (exit code on failure, message printed;
 * BM_EXIT_CONFIG without the OAuth client). */
struct bm_engine;
int bm_cli_engine(bm_cli_t *cli, struct bm_engine **e);
/* Takes the lock file <db>.<role>.lock (flock, created 0600) that keeps a
 * second `serve` or `poll` off one database: *fd holds it until closed (-1 when
 * it could not be opened); BM_EBUSY when another process holds it. */
int bm_cli_lock(const char *db, const char *role, int *fd, char *err, size_t errlen);
/* Seals a refresh token for account name under the key file (created on first
 * use); prints the error and returns a BM_E* code on failure. */
int bm_cli_seal_token(bm_cli_t *cli, const char *name, const char *token, unsigned char **out,
                      size_t *out_len);

/* ---- output (cli/output.c) ---- */

/* UTC RFC 3339 of t seconds since the epoch ("2024-05-01T09:00:00Z"), or
 * "never" when t <= 0. */
void bm_cli_fmt_time(int64_t t, char *buf, size_t len);

/* s made safe for a terminal: every control character (C0, DEL, C1 such as ESC
 * and CSI, line and bidirectional controls) and every byte that is not valid
 * UTF-8 becomes '?', so a text that came from Google (a calendar's summary, an
 * e-mail, an error) cannot retitle the window, move the cursor or change
 * colours. Returns s itself when nothing needs replacing (so never cut), else
 * the copy in buf (len bytes, cut at a character). NULL stays NULL. Every human
 * (non-JSON) printer of such a text uses it; JSON output escapes by itself. */
const char *bm_cli_text(const char *s, char *buf, size_t len);

/* Prints "busymirror CMD: MSG" (cmd NULL: "busymirror: MSG") on stderr, msg
 * through bm_cli_text: an error may quote what Google or a file said. */
void bm_cli_print_error(const char *cmd, const char *msg);

/*
 * One JSON document for stdout (`--json`): an object, built with a sticky
 * error, so callers check once, at bm_cli_json_end: the first call that fails
 * (a text that is not valid UTF-8) makes the rest no-ops. key NULL: a value
 * inside an array. Strings are copied; a NULL string is JSON null.
 * bm_cli_json_end closes the object, writes it to stdout and releases it
 * (an exit code; on failure a message for `busymirror cmd` on stderr);
 * bm_cli_json_dispose releases without writing (no-op after end).
 */
typedef struct bm_cli_json {
    yajl_gen g;
    bool bad;
} bm_cli_json_t;

void bm_cli_json_begin(bm_cli_json_t *j);
void bm_cli_json_open(bm_cli_json_t *j, const char *key, bool array);
void bm_cli_json_close(bm_cli_json_t *j, bool array);
void bm_cli_json_str(bm_cli_json_t *j, const char *key, const char *v);
void bm_cli_json_int(bm_cli_json_t *j, const char *key, int64_t v);
void bm_cli_json_bool(bm_cli_json_t *j, const char *key, bool v);
/* RFC 3339 (bm_cli_fmt_time), null when t <= 0. */
void bm_cli_json_time(bm_cli_json_t *j, const char *key, int64_t t);
int bm_cli_json_end(bm_cli_json_t *j, const char *cmd);
void bm_cli_json_dispose(bm_cli_json_t *j);

/* `account login`: Google's installed-app flow (cli/account_login.c). */
int bm_account_login(bm_cli_t *cli, int argc, char **argv);

/* Commands (cli/cmd_*.c). */
int bm_cmd_config(bm_cli_t *cli, int argc, char **argv);
int bm_cmd_account(bm_cli_t *cli, int argc, char **argv);
int bm_cmd_calendar(bm_cli_t *cli, int argc, char **argv);
int bm_cmd_sync(bm_cli_t *cli, int argc, char **argv);
int bm_cmd_poll(bm_cli_t *cli, int argc, char **argv);
int bm_cmd_reset(bm_cli_t *cli, int argc, char **argv);
int bm_cmd_cleanup(bm_cli_t *cli, int argc, char **argv);
int bm_cmd_undo(bm_cli_t *cli, int argc, char **argv);
int bm_cmd_status(bm_cli_t *cli, int argc, char **argv);
int bm_cmd_dlq(bm_cli_t *cli, int argc, char **argv);
int bm_cmd_audit(bm_cli_t *cli, int argc, char **argv);
int bm_cmd_log(bm_cli_t *cli, int argc, char **argv);
int bm_cmd_serve(bm_cli_t *cli, int argc, char **argv);
int bm_cmd_rules(bm_cli_t *cli, int argc, char **argv);

#endif
