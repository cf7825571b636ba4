/*
 * cli/cmd_serve.c: `busymirror serve`, the daemon: the push gateway (gateway/),
 * the sync workers (engine/worker.c) and the renewer (renewer/) as threads of
 * one process, each role with a store connection of its own.
 *
 * The main thread only waits: for signals (SIGTERM/SIGINT drain and exit 0,
 * SIGHUP reopens the log file), and once a second it probes that the database
 * takes writes, feeds /readyz and pings systemd's watchdog while the workers
 * and the renewer keep coming round. A lock file next to the database makes a
 * second serve on it exit 75 at once.
 */
#include "bm_build.h"
#include "cli/cli.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "engine/engine.h"
#include "gateway/gateway.h"
#include "renewer/renewer.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>
#if BM_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#define STOP_GRACE_MS    10000 /* running jobs may finish within this on SIGTERM */
#define PROBE_TIMEOUT_MS 500   /* /readyz learns within a second that writes wait */

typedef struct serve {
    bm_cli_t *cli;
    const bm_config_t *cfg;
    bm_metrics_t *metrics;
    bm_engine_hub_t *hub;
    bm_workers_t *workers;
    bm_renewer_t *renewer;
    bm_gateway_t *gateway;
    bm_store_t *commit_st;  /* the committer thread's */
    bm_store_t *collect_st; /* the admin thread's (metrics) */
    bm_store_t *probe_st;   /* the main thread's */
    volatile int cancel;    /* the workers' and the Google client's stop */
    atomic_bool draining;
    atomic_bool started; /* every role is up: the gateway's threads may read s->renewer */
    atomic_bool writable;
    char why[256]; /* why the database does not take writes (main thread writes) */
    pthread_mutex_t why_mu;
    int lock_fd;
    int64_t wrote_ok_ms;   /* the main thread's: when its probe last wrote (bm_mono_ms) */
    bool stuck;            /* the main thread's: a role was stuck at the last look */
    char **breaker_labels; /* the admin thread's: breaker series it has set */
    size_t n_breaker_labels;
} serve_t;

static void notify(const char *state)
{
#if BM_HAVE_SYSTEMD
    (void)sd_notify(0, state);
#else
    (void)state;
#endif
}

/* ---- the gateway's callbacks ---- */

/* Runs on the committer thread: every note of the batch in one transaction. */
static int commit_notes(void *ud, bm_gateway_note_t *notes, size_t n)
{
    serve_t *s = ud;
    char err[512];
    int64_t now = bm_now_ms();
    int rc = bm_store_begin(s->commit_st, err, sizeof(err));
    for (size_t i = 0; rc == BM_OK && i < n; i++)
        rc = bm_store_notification_enqueue(
            s->commit_st, notes[i].channel_id, notes[i].resource_id, now,
            s->cfg->engine.debounce_ms, s->cfg->engine.max_delay_ms,
            (int64_t)s->cfg->renewer.seam_grace * 1000, &notes[i].status, err, sizeof(err));
    if (rc == BM_OK)
        rc = bm_store_commit(s->commit_st, err, sizeof(err));
    else
        bm_store_rollback(s->commit_st);
    if (rc != BM_OK) {
        BM_LOG(BM_LOG_WARN, BM_MSG("notifications not stored: answered 503"), BM_KI("count", n),
               BM_KS("error", err));
        return rc;
    }
    bm_workers_wake(s->workers);
    return BM_OK;
}

/* Whether every worker and the renewer came round within [serve] stall_timeout:
 * a worker inside one job longer, or a renewer inside one round longer, is
 * stuck (every call to Google has a timeout far below the default). */
static bool roles_alive(serve_t *s, char *why, size_t whylen)
{
    int64_t max_ms = (int64_t)s->cfg->serve.stall_timeout * 1000;
    if (!bm_workers_alive(s->workers, max_ms, why, whylen))
        return false;
    int64_t age = bm_renewer_age_ms(s->renewer);
    if (age > max_ms) {
        snprintf(why, whylen, "the renewer has not come round for %lld ms", (long long)age);
        return false;
    }
    return true;
}

static bool ready(void *ud, char *why, size_t whylen)
{
    serve_t *s = ud;
    if (!atomic_load(&s->started)) {
        snprintf(why, whylen, "starting");
        return false;
    }
    if (atomic_load(&s->draining)) {
        snprintf(why, whylen, "draining: serve is stopping");
        return false;
    }
    if (!atomic_load(&s->writable)) {
        pthread_mutex_lock(&s->why_mu);
        snprintf(why, whylen, "database does not take writes: %s", s->why);
        pthread_mutex_unlock(&s->why_mu);
        return false;
    }
    return roles_alive(s, why, whylen);
}

/* One busymirror_breaker_open series per account, 1 while its circuit breaker
 * is open (its calendars wait), else 0, from the persisted state the engine
 * keeps. A series cannot go: an account removed since is set to 0. */
static void collect_breakers(serve_t *s, bm_metrics_t *m)
{
    bm_account_t *accts = NULL;
    size_t n = 0;
    char err[256];
    if (bm_store_account_list(s->collect_st, &accts, &n, err, sizeof(err)) != BM_OK) {
        BM_LOG(BM_LOG_WARN, BM_MSG("metrics: cannot read the accounts"), BM_KS("error", err));
        return;
    }
    char **labels = n > 0 ? bm_calloc(n, sizeof(*labels)) : NULL;
    for (size_t i = 0; i < n; i++) {
        char l[BM_METRICS_LABELS_MAX];
        size_t o = (size_t)snprintf(l, sizeof(l), "account=\"");
        /* exposition escapes; a name too long for a label is cut (names are short) */
        for (const char *c = accts[i].name; *c != '\0' && o + 4 < sizeof(l); c++) {
            if (*c == '\\' || *c == '"' || *c == '\n')
                l[o++] = '\\';
            l[o++] = *c == '\n' ? 'n' : *c;
        }
        snprintf(l + o, sizeof(l) - o, "\"");
        labels[i] = bm_strdup(l);
        bm_metrics_gauge_set(m, "busymirror_breaker_open", labels[i],
                             accts[i].breaker_until > bm_now() ? 1.0 : 0.0);
    }
    for (size_t i = 0; i < s->n_breaker_labels; i++) {
        bool gone = true;
        for (size_t k = 0; gone && k < n; k++)
            gone = strcmp(s->breaker_labels[i], labels[k]) != 0;
        if (gone)
            bm_metrics_gauge_set(m, "busymirror_breaker_open", s->breaker_labels[i], 0.0);
        free(s->breaker_labels[i]);
    }
    free(s->breaker_labels);
    s->breaker_labels = labels;
    s->n_breaker_labels = n;
    bm_store_accounts_free(accts, n);
}

/* Runs on the admin thread, before /metrics renders: what the store knows. */
static void collect(void *ud, bm_metrics_t *m)
{
    serve_t *s = ud;
    bm_serve_gauges_t g = {0};
    char err[256];
    if (bm_store_serve_gauges(s->collect_st, bm_now_ms(), &g, err, sizeof(err)) != BM_OK) {
        BM_LOG(BM_LOG_WARN, BM_MSG("metrics: cannot read the store"), BM_KS("error", err));
        return;
    }
    bm_metrics_gauge_set(m, "busymirror_queue_jobs", "state=\"pending\"", (double)g.jobs_pending);
    bm_metrics_gauge_set(m, "busymirror_queue_jobs", "state=\"running\"", (double)g.jobs_running);
    bm_metrics_gauge_set(m, "busymirror_outbox_writes", NULL, (double)g.outbox);
    bm_metrics_gauge_set(m, "busymirror_dead_letters", NULL, (double)g.dead_letters);
    bm_metrics_gauge_set(m, "busymirror_accounts", "state=\"ok\"", (double)g.accounts_ok);
    bm_metrics_gauge_set(m, "busymirror_accounts", "state=\"needs_login\"",
                         (double)g.accounts_needs_login);
    bm_metrics_gauge_set(m, "busymirror_accounts", "state=\"breaker_open\"",
                         (double)g.accounts_breaker_open);
    collect_breakers(s, m);
    bm_metrics_gauge_set(m, "busymirror_calendars", "mode=\"push\"", (double)g.calendars_push);
    bm_metrics_gauge_set(m, "busymirror_calendars", "mode=\"poll\"", (double)g.calendars_poll);
    bm_metrics_gauge_set(m, "busymirror_watch_refused", NULL, (double)g.calendars_refused);
    bm_metrics_gauge_set(m, "busymirror_channel_expiry_seconds", NULL,
                         g.earliest_channel_expiry_ms > 0
                             ? (double)(g.earliest_channel_expiry_ms - bm_now_ms()) / 1000.0
                             : 0.0);
}

static void describe_metrics(bm_metrics_t *m)
{
    static const struct {
        const char *name;
        bm_metric_type_t type;
        const char *help;
    } d[] = {
        {"busymirror_jobs_total", BM_METRIC_COUNTER, "sync jobs by result"},
        {"busymirror_job_latency_seconds", BM_METRIC_HISTOGRAM,
         "first notification (or poll) to the job done: synced and written"},
        {"busymirror_polls_total", BM_METRIC_COUNTER, "polls enqueued by the backstop"},
        {"busymirror_watch_failures_total", BM_METRIC_COUNTER, "watch calls that failed"},
        {"busymirror_queue_jobs", BM_METRIC_GAUGE, "sync jobs in the queue"},
        {"busymirror_outbox_writes", BM_METRIC_GAUGE, "block writes planned, not yet applied"},
        {"busymirror_dead_letters", BM_METRIC_GAUGE, "block writes that failed for good"},
        {"busymirror_accounts", BM_METRIC_GAUGE, "accounts by state (circuit breaker, login)"},
        {"busymirror_breaker_open", BM_METRIC_GAUGE,
         "1 while the account's circuit breaker is open (no call is made for it), else 0"},
        {"busymirror_calendars", BM_METRIC_GAUGE, "enabled calendars by mode"},
        {"busymirror_watch_refused", BM_METRIC_GAUGE,
         "enabled calendars polling because their watch was refused (status tells why)"},
        {"busymirror_channel_expiry_seconds", BM_METRIC_GAUGE,
         "seconds to the earliest expiry of a live watch channel (0: none)"},
        {"busymirror_api_calls_total", BM_METRIC_COUNTER, "Google API requests by method, status"},
    };
    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++)
        (void)bm_metrics_describe(m, d[i].name, d[i].type, d[i].help);
}

/* ---- start and stop ---- */

static int open_stores(serve_t *s, char *err, size_t errlen)
{
    const char *db = s->cfg->store.path;
    int rc = bm_store_open(db, &s->commit_st, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_open(db, &s->collect_st, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_open(db, &s->probe_st, err, errlen);
    /* The committer must answer within commit_timeout_ms (else 503 anyway); the
     * probe tells /readyz within a second. */
    if (rc == BM_OK)
        rc =
            bm_store_set_busy_timeout(s->commit_st, s->cfg->gateway.commit_timeout_ms, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_set_busy_timeout(s->probe_st, PROBE_TIMEOUT_MS, err, errlen);
    return rc;
}

/* The workers (the gateway's commits wake them), the gateway, and only once it
 * listens the renewer: a gateway that cannot start (a bad listen address, a
 * port in use, a certificate that does not load) leaves no watch channel
 * opened to an address nobody answers. */
static int start_roles(serve_t *s, char *err, size_t errlen)
{
    bm_gateway_opts_t go;
    unsigned char key[BM_CRYPTO_KEY_LEN];
    int rc = bm_crypto_key_load(s->cfg->store.key_file, true, key, err, errlen);
    if (rc != BM_OK)
        return rc;
    bm_gateway_opts_from_config(&go, s->cfg);
    memcpy(go.key, key, sizeof(key));
    bm_crypto_wipe(key, sizeof(key));
    go.metrics = s->metrics;
    go.commit = commit_notes;
    go.commit_ud = s;
    go.ready = ready;
    go.ready_ud = s;
    bm_workers_opts_t wo = {
        .cfg = s->cfg, .hub = s->hub, .cancel = &s->cancel, .metrics = s->metrics};
    rc = bm_workers_start(&wo, &s->workers, err, errlen);
    if (rc == BM_OK)
        rc = bm_gateway_start(&go, &s->gateway, err, errlen);
    bm_crypto_wipe(go.key, sizeof(go.key));
    if (rc == BM_OK) {
        bm_renewer_opts_t ro = {
            .cfg = s->cfg, .hub = s->hub, .workers = s->workers, .metrics = s->metrics};
        rc = bm_renewer_start(&ro, &s->renewer, err, errlen);
    }
    if (rc == BM_OK)
        atomic_store(&s->started, true); /* after s->renewer is set: ready() reads it */
    return rc;
}

static void stop_roles(serve_t *s)
{
    atomic_store(&s->draining, true);
    notify("STOPPING=1");
    bm_gateway_stop(s->gateway); /* answers what is in flight, accepts nothing more */
    bm_renewer_stop(s->renewer);
    bm_workers_stop(s->workers, STOP_GRACE_MS);
    bm_gateway_free(s->gateway);
    bm_renewer_free(s->renewer);
    bm_workers_free(s->workers);
    s->gateway = NULL;
    s->renewer = NULL;
    s->workers = NULL;
}

/* Whether the database takes a write now: BEGIN IMMEDIATE (the write lock),
 * then nothing, which writes no byte. So once a statement failed because the
 * database could not take it (storage unavailable: a full disk, an I/O error,
 * read-only; bm_store_unavailable_at), the probe writes for real (a lease row,
 * taken and let go) until a write works again: /readyz fails meanwhile. */
static void probe(serve_t *s)
{
    char err[256];
    int rc = bm_store_begin(s->probe_st, err, sizeof(err));
    if (rc == BM_OK)
        bm_store_rollback(s->probe_st);
    int64_t failed = bm_store_unavailable_at();
    if (rc == BM_OK && failed > s->wrote_ok_ms) {
        int64_t now = bm_mono_ms();
        rc = bm_store_lease_take(s->probe_st, "serve:probe", "serve", 60, err, sizeof(err));
        if (rc == BM_OK && bm_store_lease_release(s->probe_st, "serve:probe", "serve") != BM_OK)
            rc = bm_err(err, sizeof(err), BM_ESTORE, "store: the probe's write failed");
        if (rc == BM_OK)
            s->wrote_ok_ms = now;
    }
    if (rc != BM_OK) {
        pthread_mutex_lock(&s->why_mu);
        snprintf(s->why, sizeof(s->why), "%s", err);
        pthread_mutex_unlock(&s->why_mu);
    }
    if (atomic_exchange(&s->writable, rc == BM_OK) != (rc == BM_OK))
        BM_LOG(
            rc == BM_OK ? BM_LOG_INFO : BM_LOG_ERROR,
            BM_MSG(rc == BM_OK ? "database takes writes again" : "database does not take writes"),
            BM_KS("error", rc == BM_OK ? "" : err));
}

/* Feeds systemd's watchdog while every role comes round; a stuck one stops
 * the pings (logged once, and once more when it comes round again): with
 * WatchdogSec= set, systemd then kills serve (SIGABRT) and restarts it
 * (Restart=on-failure), and the stuck job's lease and claims are taken over
 * by the next start (their owner is gone). Without systemd, /readyz fails
 * with the same reason for whatever watches it. */
static void watchdog(serve_t *s)
{
    char why[256];
    bool alive = roles_alive(s, why, sizeof(why));
    if (alive)
        notify("WATCHDOG=1");
    if (!alive && !s->stuck)
        BM_LOG(BM_LOG_ERROR, BM_MSG("a role is stuck: systemd's watchdog is no longer fed"),
               BM_KS("why", why), BM_KI("stall_timeout", s->cfg->serve.stall_timeout));
    else if (alive && s->stuck)
        BM_LOG(BM_LOG_WARN, BM_MSG("every role comes round again: the watchdog is fed"));
    s->stuck = !alive;
}

/* The main thread until SIGTERM or SIGINT: signals, the probe, the watchdog. */
static void wait_for_stop(serve_t *s, const sigset_t *set)
{
    for (;;) {
        struct timespec one = {1, 0};
        int sig = sigtimedwait(set, NULL, &one);
        if (sig == SIGTERM || sig == SIGINT) {
            BM_LOG(BM_LOG_INFO, BM_MSG("stopping"), BM_KS("signal", strsignal(sig)));
            return;
        }
        if (sig == SIGHUP) {
            char err[256];
            if (bm_log_reopen(err, sizeof(err)) != BM_OK)
                bm_cli_print_error("serve", err);
            BM_LOG(BM_LOG_INFO, BM_MSG("log reopened"));
        }
        probe(s);
        watchdog(s);
    }
}

static int serve_run(serve_t *s, const sigset_t *set)
{
    char err[1024];
    int rc = bm_cli_lock(s->cfg->store.path, "serve", &s->lock_fd, err, sizeof(err));
    if (rc == BM_OK && s->cfg->log.file != NULL)
        rc = bm_log_open_file(s->cfg->log.file, err, sizeof(err));
    if (rc == BM_OK)
        rc = open_stores(s, err, sizeof(err));
    if (rc == BM_OK) {
        s->metrics = bm_metrics_new(0);
        describe_metrics(s->metrics);
        rc = bm_engine_hub_new(s->cfg, &s->cancel, s->metrics, &s->hub, err, sizeof(err));
    }
    if (rc == BM_OK) {
        (void)bm_metrics_on_collect(s->metrics, collect, s);
        atomic_store(&s->writable, true);
        rc = start_roles(s, err, sizeof(err));
    }
    if (rc != BM_OK) {
        bm_cli_print_error("serve", err);
        stop_roles(s);
        return rc == BM_EBUSY ? BM_EXIT_TEMPFAIL : rc == BM_EINVAL ? BM_EXIT_CONFIG : BM_EXIT_FAIL;
    }
    BM_LOG(BM_LOG_INFO, BM_MSG("serving"), BM_KI("port", bm_gateway_port(s->gateway)),
           BM_KI("admin_port", bm_gateway_admin_port(s->gateway)),
           BM_KI("workers", s->cfg->engine.workers),
           BM_KS("push", s->cfg->gateway.public_url != NULL ? "on" : "off"));
    notify("READY=1");
    wait_for_stop(s, set);
    stop_roles(s);
    BM_LOG(BM_LOG_INFO, BM_MSG("stopped"));
    return BM_EXIT_OK;
}

int bm_cmd_serve(bm_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{NULL, 0, NULL, 0}};
    const bm_cli_command_t *self = bm_cli_find("serve");
    serve_t s = {.cli = cli, .cfg = &cli->cfg, .lock_fd = -1};
    sigset_t set;
    int c, rc;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1)
        return bm_cli_option_error(self, c, argv);
    if (optind != argc)
        return bm_cli_usage_error(self, "unexpected argument '%s'", argv[optind]);
    if ((rc = bm_cli_google(cli)) != BM_EXIT_OK)
        return rc;
    /* Every thread inherits the mask: only the main thread takes the signals. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_mutex_init(&s.why_mu, NULL);
    rc = serve_run(&s, &set);
    bm_engine_hub_free(s.hub);
    bm_metrics_free(s.metrics);
    bm_store_close(s.commit_st);
    bm_store_close(s.collect_st);
    bm_store_close(s.probe_st);
    pthread_mutex_destroy(&s.why_mu);
    for (size_t i = 0; i < s.n_breaker_labels; i++)
        free(s.breaker_labels[i]);
    free(s.breaker_labels);
    if (s.lock_fd >= 0)
        close(s.lock_fd);
    return rc;
}
