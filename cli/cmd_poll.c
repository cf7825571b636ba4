/*
 * cli/cmd_poll.c: `busymirror poll`, the polling backstop once, for cron or a
 * systemd timer. It enqueues a "poll" job for every enabled calendar due at
 * its slot (bm_engine_poll_due, as serve's renewer does), then claims and runs
 * due jobs through the same queue, leases and claim order as serve's workers,
 * on [engine] workers threads, until none is due or --max-seconds passed, and
 * drains. serve may run meanwhile: job claims and calendar leases keep the two
 * off each other's calendars. A lock file next to the database
 * (<db>.poll.lock) makes an overlapping poll exit 75 before it does anything.
 */
#include "cli/cli.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/engine.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile int stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    /* atomic (lock-free: signal-safe): the job threads read it */
    __atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
}

typedef struct poll_run {
    const bm_config_t *cfg;
    bm_engine_hub_t *hub;
    int64_t account_id;
    int64_t until_ms;
} poll_run_t;

typedef struct poll_thread {
    const poll_run_t *run;
    pthread_t tid;
    bool started;
    int rc;
    bm_engine_run_counts_t counts;
    char err[512];
} poll_thread_t;

static void *poll_main(void *ud)
{
    poll_thread_t *t = ud;
    const poll_run_t *run = t->run;
    bm_store_t *st = NULL;
    bm_engine_t *e = NULL;
    bm_engine_opts_t o = {.cfg = run->cfg,
                          .hub = run->hub,
                          .stop = &stop_flag,
                          .drain_threads = 1,
                          .drain_no_wait = true};
    t->rc = bm_store_open(run->cfg->store.path, &st, t->err, sizeof(t->err));
    if (t->rc == BM_OK)
        t->rc = bm_engine_new(&o, st, &e, t->err, sizeof(t->err));
    if (t->rc == BM_OK)
        t->rc = bm_engine_run_due(e, run->account_id, run->until_ms, &t->counts, t->err,
                                  sizeof(t->err));
    bm_engine_free(e);
    bm_store_close(st);
    return NULL;
}

/* Enqueues a poll of every enabled calendar (of account_id, 0: all) due now;
 * *n_due counts them. */
static int enqueue_due(bm_cli_t *cli, int64_t account_id, size_t *n_due, char *err, size_t errlen)
{
    bm_calendar_t *cals = NULL;
    size_t n = 0;
    int64_t now = bm_now_ms();
    int rc = bm_store_calendar_list(cli->store, account_id, NULL, true, &cals, &n, err, errlen);
    int64_t *ids = bm_calloc(n > 0 ? n : 1, sizeof(*ids));
    *n_due = 0;
    for (size_t i = 0; rc == BM_OK && i < n; i++)
        if (bm_engine_poll_due(&cli->cfg, &cals[i], 0, 0, now))
            ids[(*n_due)++] = cals[i].id;
    if (rc == BM_OK)
        rc = bm_engine_enqueue_polls(cli->store, ids, *n_due, now, err, errlen);
    free(ids);
    bm_store_calendars_free(cals, n);
    return rc;
}

/* Runs due jobs on [engine] workers threads; sums what they did into *sum.
 * BM_OK, or the first thread's error. */
static int run_threads(const poll_run_t *run, bm_engine_run_counts_t *sum, char *err, size_t errlen)
{
    size_t n = (size_t)run->cfg->engine.workers;
    poll_thread_t *t = bm_calloc(n, sizeof(*t));
    int rc = BM_OK;
    for (size_t i = 0; i < n; i++) {
        t[i].run = run;
        t[i].started = pthread_create(&t[i].tid, NULL, poll_main, &t[i]) == 0;
        if (!t[i].started && rc == BM_OK)
            rc = bm_err(err, errlen, BM_EIO, "cannot start a poll thread");
    }
    for (size_t i = 0; i < n; i++) {
        if (!t[i].started)
            continue;
        pthread_join(t[i].tid, NULL);
        sum->ok += t[i].counts.ok;
        sum->failed += t[i].counts.failed;
        sum->busy += t[i].counts.busy;
        if (t[i].rc != BM_OK && rc == BM_OK)
            rc = bm_err(err, errlen, t[i].rc, "%s", t[i].err);
    }
    free(t);
    return rc;
}

static int parse_args(const bm_cli_command_t *self, int argc, char **argv, const char **account,
                      long long *max_s)
{
    static const struct option opts[] = {{"account-id", required_argument, NULL, 'a'},
                                         {"max-seconds", required_argument, NULL, 'm'},
                                         {NULL, 0, NULL, 0}};
    int c, rc;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 'a')
            *account = optarg;
        else if (c != 'm')
            return bm_cli_option_error(self, c, argv);
        else if ((rc = bm_cli_parse_count(self, "max-seconds", optarg, 86400, max_s)) != BM_EXIT_OK)
            return rc;
    }
    if (optind != argc)
        return bm_cli_usage_error(self, "unexpected argument '%s'", argv[optind]);
    return BM_EXIT_OK;
}

/* The work of one poll once its lock is held: an exit code. */
static int poll_locked(bm_cli_t *cli, const char *account, long long max_s)
{
    bm_account_t acct = {0};
    bm_engine_hub_t *hub = NULL;
    bm_engine_t *e = NULL;
    bm_engine_run_counts_t sum = {0};
    size_t n_due = 0;
    char err[1024];
    int rc = account != NULL ? bm_cli_account(cli, account, &acct) : BM_EXIT_OK;
    if (rc == BM_EXIT_OK)
        rc = bm_cli_engine(cli, &e); /* checks the OAuth client, opens the store */
    if (rc != BM_EXIT_OK)
        goto out;
    poll_run_t run = {.cfg = &cli->cfg,
                      .account_id = acct.id,
                      .until_ms = max_s > 0 ? bm_now_ms() + max_s * 1000 : 0};
    int r = enqueue_due(cli, acct.id, &n_due, err, sizeof(err));
    if (r == BM_OK)
        r = bm_engine_hub_new(&cli->cfg, &stop_flag, NULL, &hub, err, sizeof(err));
    if (r == BM_OK) {
        run.hub = hub;
        r = run_threads(&run, &sum, err, sizeof(err));
    }
    if (r == BM_OK && !__atomic_load_n(&stop_flag, __ATOMIC_RELAXED))
        r = bm_engine_drain(e, err, sizeof(err));
    printf("%zu calendars due; %d jobs done, %d failed, %d busy elsewhere\n", n_due, sum.ok,
           sum.failed, sum.busy);
    if (r != BM_OK)
        bm_cli_print_error("poll", err);
    rc = r != BM_OK || sum.failed > 0 ? BM_EXIT_FAIL : BM_EXIT_OK;
out:
    bm_engine_free(e);
    bm_engine_hub_free(hub);
    bm_account_dispose(&acct);
    return rc;
}

int bm_cmd_poll(bm_cli_t *cli, int argc, char **argv)
{
    const bm_cli_command_t *self = bm_cli_find("poll");
    const char *account = NULL;
    long long max_s = 0;
    char err[1024];
    int fd = -1;
    int rc = parse_args(self, argc, argv, &account, &max_s);
    if (rc == BM_EXIT_OK)
        rc = bm_cli_config(cli);
    if (rc != BM_EXIT_OK)
        return rc;
    if (max_s == 0)
        max_s = cli->cfg.sync.deadline;
    int r = bm_cli_lock(cli->cfg.store.path, "poll", &fd, err, sizeof(err));
    if (r != BM_OK) {
        bm_cli_print_error("poll", err);
        rc = r == BM_EBUSY ? BM_EXIT_TEMPFAIL : BM_EXIT_FAIL;
    } else {
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        rc = poll_locked(cli, account, max_s);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}
