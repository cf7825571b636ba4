/* cli/main.c: global options, the command table and dispatch. */
#include "bm_build.h"
#include "bm_vcs.h"
#include "cli/cli.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const bm_cli_command_t commands[] = {
    {"serve", bm_cmd_serve, "the daemon: push gateway, sync workers and renewer",
     "\nno options: everything comes from the configuration. It listens on [gateway]\n"
     "listen for Google's notifications to [gateway] public_url (plain HTTP on\n"
     "loopback behind nginx, or HTTPS with tls_cert/tls_key), gives\n"
     "every enabled calendar a watch channel, syncs on [engine] workers threads,\n"
     "lists every calendar at least every poll interval (its account's, else [sync]\n"
     "poll_interval; spread over the interval), and serves\n"
     "/healthz, /readyz and /metrics on [admin] listen. Without public_url it polls.\n"
     "\nsignals: SIGTERM or SIGINT drain and exit 0; SIGHUP reopens [log] file\n"
     "\nexit codes: 0 stopped by a signal; 1 a role could not start; 75 another serve\n"
     "runs on the database; 78 bad configuration (a non-loopback listen without a\n"
     "certificate, no OAuth client, a bad [group G] rule)\n"},
    {"sync", bm_cmd_sync, "mirror busy time now, once (for cron or by hand)",
     "  --account-id NAME   only this account's calendars (NAME: the account's name, as\n"
     "                      in account list; not a number)\n"
     "  --calendar-id ID    only this calendar\n"
     "  --force-full        ignore sync tokens, list everything\n"
     "  --dry-run           print planned operations, write nothing\n"
     "  --verbose           progress per calendar, one line per operation and, for each\n"
     "                      event the group's rules skip, the rule (skip reason=...)\n"
     "  --timeout SECONDS   stop cleanly after this long (default [sync] deadline,\n"
     "                      600; 0: no limit)\n"
     "\nexit codes: 0 all synced; 1 some calendars failed (or the deadline hit); 2 usage;\n"
     "75 another sync holds a calendar's lease; 78 bad configuration; 129, 130, 143\n"
     "stopped by SIGHUP, SIGINT (Ctrl-C), SIGTERM (the outbox keeps the rest)\n"},
    {"reset", bm_cmd_reset, "remove every block busymirror made in one calendar",
     "  --calendar-id ID    the calendar (blocks are found by busymirror's marker in Google)\n"
     "  --account-id NAME   when the calendar id is in several accounts\n"
     "  --dry-run           list what would be deleted, delete nothing (exit 0)\n"
     "  --confirm           delete; without it (and no typed confirmation on a terminal)\n"
     "                      nothing is deleted and the exit code is 1\n"},
    {"cleanup", bm_cmd_cleanup, "remove orphaned blocks, unused mirror rows and old log entries",
     "  --dry-run           report what would be removed\n"},
    {"poll", bm_cmd_poll, "the polling backstop once: sync the calendars that are due (for cron)",
     "  --account-id NAME   only this account's calendars\n"
     "  --max-seconds S     claim no job after S seconds (1 to 86400; default [sync]\n"
     "                      deadline, 600; 0 there: no limit)\n"
     "\nenqueues a poll of every enabled calendar due at its slot (each calendar is\n"
     "listed once per poll interval, its account's or [sync] poll_interval, at a\n"
     "phase spread by its id), then runs due jobs as serve's workers do (account\n"
     "priority first, accounts taking turns, the most overdue first) until none is\n"
     "due, and drains. It works with or without serve running.\n"
     "\nexit codes: 0 all done; 1 some failed; 2 usage; 75 another poll runs on the\n"
     "database (it exits at once); 78 bad configuration\n"},
    {"account", bm_cmd_account, "add, log in, list, schedule and remove Google accounts",
     "  add --name NAME --refresh-token-file FILE [--email EMAIL]\n"
     "                      store an account; its refresh token is encrypted at rest\n"
     "  login --name NAME [--timeout SECONDS] [--login-hint EMAIL]\n"
     "                      log in with Google in a browser (prints the address to open;\n"
     "                      answers arrive on 127.0.0.1, default --timeout 300) and store\n"
     "                      the account, or give an existing one a new token (needs-login)\n"
     "  list [--json]       name, e-mail, calendars, priority, poll interval and state\n"
     "                      of every account\n"
     "  set --account-id NAME [--priority P] [--poll-interval S]\n"
     "                      schedule it: P 0 to 100 (default 50), its jobs before those\n"
     "                      of lower ones; S seconds between polls of its calendars, 1 to\n"
     "                      86400, 0: [sync] poll_interval\n"
     "  remove --account-id NAME [--keep-blocks] --confirm\n"
     "                      delete the blocks in its calendars and those made from them\n"
     "                      (unless --keep-blocks), then forget the account\n"
     "\nNAME: 1 to 64 characters of A-Z a-z 0-9 . _ @ + -\n"
     "\nexit codes: 0 ok; 1 failure (login: denied, no answer within --timeout, Google\n"
     "refused the code); 2 usage (add: FILE is not one line of printable ASCII without\n"
     "blanks, at most 512 characters); 78 [google] client_id or client_secret not set\n"},
    {"calendar", bm_cmd_calendar, "discover, enable, disable, label and list calendars",
     "  discover --account-id NAME\n"
     "                      read the account's calendar list from Google\n"
     "  enable --calendar-id ID [--account-id NAME] [--group G] [--role both|source|target]\n"
     "                      mirror this calendar with the others of its group (default\n"
     "                      'default'; G as a NAME: 1 to 64 of A-Z a-z 0-9 . _ @ + -);\n"
     "                      source: only gives, target: only receives\n"
     "  disable --calendar-id ID [--account-id NAME]\n"
     "                      stop mirroring it and remove the blocks it gave and got\n"
     "  set --calendar-id ID [--account-id NAME] --label TEXT\n"
     "                      what {calendar} in its group's block_summary stands for in\n"
     "                      the blocks made from it (default: its summary; '' resets)\n"
     "  list [--account-id NAME] [--calendar-id ID] [--json]\n"},
    {"rules", bm_cmd_rules, "each group's mirror rules, and what they keep of a calendar",
     "  check [--calendar-id ID] [--account-id NAME]\n"
     "                      print each enabled group's effective rules ([group G], else\n"
     "                      the defaults) and, for one calendar, how many of its events\n"
     "                      in the window each rule keeps and skips (listed from Google\n"
     "                      read-only; nothing is written)\n"
     "\nexit codes: 0 ok; 1 Google could not be read; 2 usage; 78 bad configuration\n"},
    {"status", bm_cmd_status, "health of every calendar and account",
     "  --json              machine-readable\n"
     "\nexit codes: 0 healthy; 1 something needs attention (an account needs login, a\n"
     "calendar's last sync failed or never ran, dead letters, writes retrying)\n"},
    {"dlq", bm_cmd_dlq, "list, retry and purge dead letters (block writes that failed for good)",
     "  list [--json]\n"
     "  retry --id N | --all      back to the outbox, then applied now\n"
     "  purge [--older-than DAYS] --confirm\n"},
    {"undo", bm_cmd_undo,
     "re-create what a reset, cleanup, disable, regroup or account removal deleted",
     "  --audit-id N        the run to undo (busymirror audit list shows the runs)\n"
     "  --last              the newest run\n"
     "\nundoes the blocks deleted by: reset, cleanup, calendar disable, calendar enable\n"
     "--group (a regroup), account remove; each is audited with the blocks' content\n"},
    {"audit", bm_cmd_audit, "what each reset, cleanup, disable, regroup or account removal deleted",
     "  list [--json] [--limit N]\n"
     "                      the newest runs first (default 20): run id (what undo --audit-id\n"
     "                      takes), when, action, calendars, blocks deleted, how many undone\n"},
    {"log", bm_cmd_log, "recent syncs of each calendar, from the sync log",
     "  --calendar-id ID    only this calendar\n"
     "  --account-id NAME   when the calendar id is in several accounts\n"
     "  --limit N           at most N syncs, the newest first (default 50)\n"
     "  --json              machine-readable\n"},
    {"config", bm_cmd_config, "validate the configuration (config check)",
     "  check               validate and print the effective config, secrets masked, and\n"
     "                      check that the folders of [store] path and key_file exist\n"
     "  keys                list every key with its default and range\n"},
};
static const size_t n_commands = sizeof(commands) / sizeof(commands[0]);

const bm_cli_command_t *bm_cli_find(const char *name)
{
    for (size_t i = 0; i < n_commands; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void print_help(FILE *f)
{
    fprintf(f, "usage: busymirror [-c FILE] COMMAND [OPTIONS]\n"
               "\n"
               "Mirrors every real commitment of each enabled Google calendar into the others\n"
               "of its group as a private \"Busy\" block.\n"
               "\n"
               "options:\n"
               "  -c, --config FILE   configuration file (else BUSYMIRROR_CONFIG, else\n"
               "                      /etc/busymirror/busymirror.ini, else\n"
               "                      $XDG_CONFIG_HOME/busymirror/busymirror.ini)\n"
               "  -h, --help          this help; COMMAND --help for a command's\n"
               "  -V, --version       print the version and the git commit it was built from\n"
               "\n"
               "commands:\n");
    for (size_t i = 0; i < n_commands; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nconfiguration keys:\n");
    bm_config_print_keys(f);
    fprintf(f, "\n--account-id takes the account's name (as in account list), not a number.\n"
               "\nexit codes: 0 ok, 1 failure, 2 usage, 75 busy (try later),\n"
               "            78 bad configuration, 129/130/143 sync stopped by SIGHUP/SIGINT/\n"
               "            SIGTERM (the outbox keeps what was not applied)\n");
}

void bm_cli_print_command_help(const bm_cli_command_t *cmd, FILE *f)
{
    fprintf(f, "usage: busymirror [-c FILE] %s [OPTIONS]\n\n%s\n\noptions:\n", cmd->name,
            cmd->summary);
    fprintf(f, "  -h, --help          this help\n%s", cmd->usage);
}

int bm_cli_usage_error(const bm_cli_command_t *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "busymirror%s%s: ", cmd != NULL ? " " : "", cmd != NULL ? cmd->name : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'busymirror %s%s--help')\n", cmd != NULL ? cmd->name : "",
            cmd != NULL ? " " : "");
    return BM_EXIT_USAGE;
}

int bm_cli_option_error(const bm_cli_command_t *cmd, int c, char **argv)
{
    if (c == ':')
        return bm_cli_usage_error(cmd, "option '%s' needs an argument", argv[optind - 1]);
    return bm_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
}

int bm_cli_conflict(const bm_cli_command_t *cmd, const char *a, const char *b)
{
    return bm_cli_usage_error(cmd, "%s and %s conflict: give one of them", a, b);
}

int bm_cli_config(bm_cli_t *cli)
{
    if (cli->config_path != NULL)
        return BM_EXIT_OK;
    fprintf(stderr,
            "busymirror: no configuration file: none given with -c FILE or BUSYMIRROR_CONFIG, "
            "and none at %s\n",
            cli->looked);
    return BM_EXIT_CONFIG;
}

int bm_cli_parse_count(const bm_cli_command_t *cmd, const char *opt, const char *arg, long long max,
                       long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || v < 1 || v > max)
        return bm_cli_usage_error(cmd, "--%s takes a number from 1 to %lld, not '%s'", opt, max,
                                  arg);
    *out = v;
    return BM_EXIT_OK;
}

int bm_cli_parse_json_only(const bm_cli_command_t *cmd, int argc, char **argv, bool *json)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    int c;
    *json = false;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c != 'j')
            return bm_cli_option_error(cmd, c, argv);
        *json = true;
    }
    if (optind != argc)
        return bm_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    return BM_EXIT_OK;
}

int bm_cli_store(bm_cli_t *cli, bm_store_t **out)
{
    char err[512];
    int rc = bm_cli_config(cli);
    if (rc != BM_EXIT_OK)
        return rc;
    if (cli->store == NULL &&
        bm_store_open(cli->cfg.store.path, &cli->store, err, sizeof(err)) != BM_OK) {
        bm_cli_print_error(NULL, err);
        return BM_EXIT_FAIL;
    }
    *out = cli->store;
    return BM_EXIT_OK;
}

/* The documented defaults, first found wins: /etc/busymirror/busymirror.ini, then
 * $XDG_CONFIG_HOME/busymirror/busymirror.ini (XDG_CONFIG_HOME defaults to ~/.config).
 * Sets cli->config_path to the file found, or leaves it NULL with cli->looked
 * naming the places. */
static void find_default_config(bm_cli_t *cli)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    char user[4096] = "";
    if (xdg != NULL && xdg[0] == '/')
        snprintf(user, sizeof(user), "%s/busymirror/busymirror.ini", xdg);
    else if (home != NULL && home[0] != '\0')
        snprintf(user, sizeof(user), "%s/.config/busymirror/busymirror.ini", home);
    const char *places[] = {"/etc/busymirror/busymirror.ini", user};
    snprintf(cli->looked, sizeof(cli->looked), "%s%s%s", places[0], user[0] ? " or " : "", user);
    for (size_t i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
        if (places[i][0] != '\0' && access(places[i], F_OK) == 0) {
            snprintf(cli->found_path, sizeof(cli->found_path), "%s", places[i]);
            cli->config_path = cli->found_path;
            return;
        }
    }
}

/* The client secret sits in the config file in clear: say so when others can read it. */
static void warn_open_secret(const bm_cli_t *cli)
{
    struct stat sb;
    if (cli->cfg.google.client_secret != NULL && cli->cfg.source != NULL &&
        stat(cli->cfg.source, &sb) == 0 && (sb.st_mode & 044) != 0)
        fprintf(stderr,
                "busymirror: warning: %s holds [google] client_secret in clear and is readable "
                "by group or others (mode %04o): run chmod 600 %s\n",
                cli->cfg.source, (unsigned)(sb.st_mode & 07777), cli->cfg.source);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    bm_cli_t cli = {.prog = argv[0]};
    int rc = BM_EXIT_OK;
    char err[1024];
    int c;

    signal(SIGPIPE, SIG_IGN);
    bm_config_init(&cli.cfg);
    /* '+': stop at the command name; the command parses the rest. */
    while ((c = getopt_long(argc, argv, "+:c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cli.config_path = optarg;
            break;
        case 'h':
            print_help(stdout);
            goto out;
        case 'V':
            printf("busymirror %s (commit %s)\n", BM_VERSION, BM_COMMIT);
            goto out;
        default:
            rc = bm_cli_option_error(NULL, c, argv);
            goto out;
        }
    }
    if (optind >= argc) {
        print_help(stderr);
        rc = BM_EXIT_USAGE;
        goto out;
    }
    const bm_cli_command_t *cmd = bm_cli_find(argv[optind]);
    if (cmd == NULL) {
        rc = bm_cli_usage_error(NULL, "unknown command '%s'", argv[optind]);
        goto out;
    }
    for (int i = optind + 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            bm_cli_print_command_help(cmd, stdout);
            goto out;
        }
    }
    if (cli.config_path == NULL)
        cli.config_path = getenv("BUSYMIRROR_CONFIG");
    if (cli.config_path != NULL && cli.config_path[0] == '\0')
        cli.config_path = NULL;
    if (cli.config_path == NULL)
        find_default_config(&cli);
    if (cli.config_path != NULL &&
        bm_config_load(&cli.cfg, cli.config_path, err, sizeof(err)) != BM_OK) {
        bm_cli_print_error(NULL, err);
        rc = BM_EXIT_CONFIG;
        goto out;
    }
    warn_open_secret(&cli);
    bm_log_set_level((bm_log_level_t)cli.cfg.log.level);
    bm_log_add_secret(cli.cfg.google.client_secret);
    optind++; /* the command's own getopt starts after its name */
    argc -= optind - 1;
    argv += optind - 1;
    optind = 1;
    rc = cmd->run(&cli, argc, argv);
out:
    if (cli.store != NULL)
        bm_store_close(cli.store);
    bm_config_dispose(&cli.cfg);
    return rc;
}
