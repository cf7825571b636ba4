/* cli/cmd_sync.c: `busymirror sync`: mirror busy time now, once. */
#include "cli/cli.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/engine.h"

#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    /* atomic (lock-free: signal-safe): the drain threads read the flag, and
     * the handler may run on any thread */
    __atomic_store_n(&stop_signal, sig, __ATOMIC_RELAXED);
    __atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
}

/* Prints the run's summary (and why it stopped) and answers the exit code. */
static int report(bm_engine_t *e, const bm_engine_opts_t *o, int r, const char *err, double secs,
                  bool timeout_flag, long timeout)
{
    int rc;
    bm_engine_totals_t t;
    bm_engine_totals(e, &t);
    printf("%s%d calendars synced, %d failed%s: %lld listed, %lld inserts, %lld updates, "
           "%lld deletes planned; %lld writes applied, %lld pending, %lld dead letters; "
           "%ld API calls in %.1f s\n",
           o->dry_run ? "dry run (nothing written): " : "", t.calendars_ok, t.calendars_failed,
           t.calendars_busy > 0 ? ", some busy" : "", (long long)t.listed,
           (long long)t.planned_inserts, (long long)t.planned_updates, (long long)t.planned_deletes,
           (long long)t.applied, (long long)t.pending, (long long)t.dead_letters,
           bm_engine_api_calls(e), secs);
    if (r == BM_OK) {
        rc = t.dead_letters > 0 || t.pending > 0 ? BM_EXIT_FAIL : BM_EXIT_OK;
        if (t.pending > 0)
            fprintf(stderr,
                    "busymirror sync: %lld block writes wait for a later run (see "
                    "busymirror status)\n",
                    (long long)t.pending);
    } else if (r == BM_ECANCELED) {
        int sig = __atomic_load_n(&stop_signal, __ATOMIC_RELAXED);
        if (sig == SIGALRM)
            fprintf(stderr,
                    "busymirror sync: stopped by %s (%ld s); pending writes stay in the "
                    "outbox for the next run\n",
                    timeout_flag ? "--timeout" : "[sync] deadline", timeout);
        else
            fprintf(stderr,
                    "busymirror sync: stopped by %s; pending writes stay in the outbox for "
                    "the next run\n",
                    sig == SIGHUP   ? "SIGHUP"
                    : sig == SIGINT ? "SIGINT (Ctrl-C)"
                                    : "SIGTERM");
        rc = sig == SIGALRM ? BM_EXIT_FAIL : 128 + sig;
    } else if (r == BM_EBUSY && t.calendars_failed == 0) {
        bm_cli_print_error("sync", err);
        rc = BM_EXIT_TEMPFAIL;
    } else {
        bm_cli_print_error("sync", err);
        rc = BM_EXIT_FAIL;
    }
    return rc;
}

/* A stop (Ctrl-C, SIGTERM, a closed terminal, the deadline) ends the run
 * cleanly: the write in flight finishes, the outbox keeps the rest. */
static void catch_signals(long timeout)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    if (timeout > 0)
        alarm((unsigned)timeout);
}

int bm_cmd_sync(bm_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"account-id", required_argument, NULL, 'a'},
                                         {"calendar-id", required_argument, NULL, 'c'},
                                         {"force-full", no_argument, NULL, 'f'},
                                         {"dry-run", no_argument, NULL, 'n'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    const bm_cli_command_t *self = bm_cli_find("sync");
    const char *account = NULL, *calendar = NULL;
    bm_engine_opts_t o = {.cfg = &cli->cfg, .stop = (const volatile int *)&stop_flag};
    bm_account_t acct = {0};
    bm_calendar_t cal = {0};
    bm_engine_t *e = NULL;
    bm_store_t *st;
    long timeout = cli->cfg.sync.deadline;
    bool timeout_flag = false;
    char err[1024], *end;
    int c, rc;

    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            account = optarg;
            break;
        case 'c':
            calendar = optarg;
            break;
        case 'f':
            o.force_full = true;
            break;
        case 'n':
            o.dry_run = true;
            break;
        case 'v':
            o.verbose = true;
            break;
        case 't':
            timeout = strtol(optarg, &end, 10);
            timeout_flag = true;
            if (*end != '\0' || end == optarg || timeout < 0 || timeout > 86400)
                return bm_cli_usage_error(
                    self, "--timeout takes seconds from 0 (no limit) to 86400, not '%s'", optarg);
            break;
        default:
            return bm_cli_option_error(self, c, argv);
        }
    }
    if (optind != argc)
        return bm_cli_usage_error(self, "unexpected argument '%s'", argv[optind]);
    if ((rc = bm_cli_google(cli)) != BM_EXIT_OK || (rc = bm_cli_store(cli, &st)) != BM_EXIT_OK)
        return rc;
    if (calendar != NULL) {
        rc = bm_cli_calendar(cli, calendar, account, &cal);
    } else if (account != NULL) {
        rc = bm_cli_account(cli, account, &acct);
    }
    if (rc != BM_EXIT_OK)
        goto out;

    o.progress = o.verbose && isatty(STDOUT_FILENO);
    catch_signals(timeout);

    if (bm_engine_new(&o, st, &e, err, sizeof(err)) != BM_OK) {
        bm_cli_print_error("sync", err);
        rc = BM_EXIT_FAIL;
        goto out;
    }
    int64_t t0 = bm_mono_ms();
    int r = bm_engine_sync_all(e, calendar != NULL ? cal.account_id : acct.id,
                               calendar != NULL ? cal.gcal_id : NULL, err, sizeof(err));
    rc = report(e, &o, r, err, (double)(bm_mono_ms() - t0) / 1000.0, timeout_flag, timeout);
out:
    alarm(0);
    bm_engine_free(e);
    bm_calendar_dispose(&cal);
    bm_account_dispose(&acct);
    return rc;
}
