/* tests/core/test_queue.c: the sync queue of core/store (the jobs table):
 * coalescing, debounce with a bound, follow-ups, claim order and exclusion,
 * lease takeover, failure backoff, release, and claims from several processes;
 * and the watch channels whose notifications feed it. */
#include "core/store.h"
#include "core/util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEBOUNCE  100
#define MAX_DELAY 500
#define GRACE     600000 /* [renewer] seam_grace, ms */
#define LEASE     1000

static char dir[64], db[128];
static char err[512];
static bm_store_t *st;
static int64_t cal[4];

static void setup(void)
{
    int64_t acc;
    strcpy(dir, "/tmp/bm_test_queue_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(db, sizeof(db), "%s/bm.db", dir);
    ck_assert_msg(bm_store_open(db, &st, err, sizeof(err)) == BM_OK, "%s", err);
    ck_assert_int_eq(bm_store_account_add(st, "a", NULL, NULL, 0, &acc, err, sizeof(err)), BM_OK);
    for (int i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof(id), "cal%d@example.com", i);
        ck_assert_int_eq(bm_store_calendar_upsert(st, acc, id, id, "UTC", "owner", false, &cal[i],
                                                  err, sizeof(err)),
                         BM_OK);
        ck_assert_int_eq(
            bm_store_calendar_set_enabled(st, cal[i], true, NULL, BM_ROLE_BOTH, err, sizeof(err)),
            BM_OK);
    }
}

static void teardown(void)
{
    char cmd[160];
    bm_store_close(st);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Enqueues a notification for calendar c at now; answers whether it coalesced. */
static bool enqueue(int64_t c, int64_t now)
{
    bool coalesced = false;
    ck_assert_msg(bm_store_job_enqueue(st, c, "push", now, DEBOUNCE, MAX_DELAY, &coalesced, err,
                                       sizeof(err)) == BM_OK,
                  "%s", err);
    return coalesced;
}

/* Claims for owner at now: the job's id (its row in *j when j is not NULL), or 0 when
 * nothing is due. */
static int64_t claim_as(const char *owner, int64_t now, bm_job_t *j)
{
    bm_job_t row = {0};
    int rc = bm_store_job_claim(st, owner, now, LEASE, &row, err, sizeof(err));
    ck_assert_msg(rc == BM_OK || rc == BM_ENOTFOUND, "%s", err);
    int64_t id = rc == BM_OK ? row.id : 0;
    if (j != NULL)
        *j = row;
    else
        bm_job_dispose(&row);
    return id;
}

static void stats(int64_t *pending, int64_t *running, int64_t *coalesced)
{
    ck_assert_int_eq(bm_store_queue_stats(st, pending, running, coalesced, err, sizeof(err)),
                     BM_OK);
}

static int64_t next_due(void)
{
    int64_t ms = -1;
    ck_assert_int_eq(bm_store_job_next_due(st, &ms, err, sizeof(err)), BM_OK);
    return ms;
}

START_TEST(notifications_for_a_pending_job_coalesce)
{
    int64_t pending, running, coalesced;
    ck_assert(!enqueue(cal[0], 1000));
    ck_assert(enqueue(cal[0], 1010));
    ck_assert(enqueue(cal[0], 1020));
    ck_assert(!enqueue(cal[1], 1030));
    stats(&pending, &running, &coalesced);
    ck_assert_int_eq(pending, 2);
    ck_assert_int_eq(running, 0);
    ck_assert_int_eq(coalesced, 2);
    bm_job_t j;
    ck_assert_int_ne(claim_as("w", 5000, &j), 0);
    ck_assert_int_eq(j.calendar_id, cal[0]);
    ck_assert_int_eq(j.coalesced, 2);
    ck_assert_int_eq(j.enqueued_at, 1000); /* the first notification */
    ck_assert_str_eq(j.reason, "push");
    ck_assert_int_eq(j.attempts, 1);
    ck_assert_str_eq(j.lease_owner, "w");
    ck_assert_int_eq(j.lease_expires, 5000 + LEASE);
    bm_job_dispose(&j);
}
END_TEST

START_TEST(debounce_follows_the_latest_notification_within_max_delay)
{
    enqueue(cal[0], 1000);
    ck_assert_int_eq(next_due(), 1000 + DEBOUNCE);
    ck_assert_int_eq(claim_as("w", 1099, NULL), 0);
    enqueue(cal[0], 1080); /* a quiet period after the latest one */
    ck_assert_int_eq(next_due(), 1080 + DEBOUNCE);
    ck_assert_int_eq(claim_as("w", 1100, NULL), 0);
    enqueue(cal[0], 1450); /* never later than max_delay after the first */
    ck_assert_int_eq(next_due(), 1000 + MAX_DELAY);
    ck_assert_int_eq(claim_as("w", 1499, NULL), 0);
    ck_assert_int_ne(claim_as("w", 1500, NULL), 0);
}
END_TEST

START_TEST(enqueue_while_running_makes_one_follow_up)
{
    int64_t pending, running, coalesced;
    enqueue(cal[0], 0);
    int64_t first = claim_as("w1", 1000, NULL);
    ck_assert_int_ne(first, 0);
    ck_assert(!enqueue(cal[0], 1100)); /* the follow-up */
    ck_assert(enqueue(cal[0], 1150));  /* coalesces into it */
    stats(&pending, &running, &coalesced);
    ck_assert_int_eq(pending, 1);
    ck_assert_int_eq(running, 1);
    ck_assert_int_eq(coalesced, 1);
    /* due, but its calendar is running: nobody gets it */
    ck_assert_int_eq(claim_as("w2", 1000 + LEASE - 1, NULL), 0);
    ck_assert_int_eq(next_due(), 1000 + LEASE);
    ck_assert_int_eq(bm_store_job_done(st, first, "w1", err, sizeof(err)), BM_OK);
    ck_assert_int_eq(next_due(), 1150 + DEBOUNCE);
    int64_t second = claim_as("w2", 1300, NULL);
    ck_assert_int_ne(second, 0);
    ck_assert_int_ne(second, first);
    ck_assert_int_eq(bm_store_job_done(st, second, "w2", err, sizeof(err)), BM_OK);
    ck_assert_int_eq(next_due(), 0);
}
END_TEST

START_TEST(claims_take_the_earliest_due_first)
{
    enqueue(cal[2], 300);
    enqueue(cal[0], 100);
    enqueue(cal[3], 9000); /* not due */
    enqueue(cal[1], 200);
    bm_job_t j;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_ne(claim_as("w", 1000, &j), 0);
        ck_assert_int_eq(j.calendar_id, cal[i]);
        bm_job_dispose(&j);
    }
    ck_assert_int_eq(claim_as("w", 1000, NULL), 0);
    ck_assert_int_eq(next_due(), 1000 + LEASE); /* the earliest lease: a takeover */
}
END_TEST

START_TEST(done_and_extend_need_the_owner)
{
    enqueue(cal[0], 0);
    int64_t id = claim_as("w1", 1000, NULL);
    ck_assert_int_eq(bm_store_job_done(st, id, "w2", err, sizeof(err)), BM_ENOTFOUND);
    ck_assert_int_eq(bm_store_job_extend(st, id, "w2", 9000, err, sizeof(err)), BM_ENOTFOUND);
    ck_assert_int_eq(bm_store_job_extend(st, id, "w1", 9000, err, sizeof(err)), BM_OK);
    /* the extended lease is live: no takeover after the first lease's time */
    ck_assert_int_eq(claim_as("w2", 1000 + LEASE + 1, NULL), 0);
    ck_assert_int_eq(bm_store_job_done(st, id, "w1", err, sizeof(err)), BM_OK);
    ck_assert_int_eq(bm_store_job_done(st, id, "w1", err, sizeof(err)), BM_ENOTFOUND);
}
END_TEST

START_TEST(an_expired_lease_is_taken_over)
{
    enqueue(cal[0], 0);
    int64_t id = claim_as("crashed", 1000, NULL);
    ck_assert_int_eq(claim_as("w", 1000 + LEASE - 1, NULL), 0);
    bm_job_t j;
    ck_assert_int_eq(claim_as("w", 1000 + LEASE, &j), id);
    ck_assert_int_eq(j.attempts, 2);
    ck_assert_str_eq(j.lease_owner, "w");
    ck_assert_ptr_nonnull(j.last_error);
    bm_job_dispose(&j);
    ck_assert_int_eq(bm_store_job_done(st, id, "crashed", err, sizeof(err)), BM_ENOTFOUND);
    ck_assert_int_eq(bm_store_job_done(st, id, "w", err, sizeof(err)), BM_OK);

    /* with a follow-up waiting: the follow-up absorbs the lost job */
    int64_t pending, running, coalesced;
    enqueue(cal[1], 5000);
    id = claim_as("crashed", 6000, NULL);
    enqueue(cal[1], 6100);
    enqueue(cal[1], 6200);
    ck_assert_int_ne(claim_as("w", 6000 + LEASE, &j), 0);
    ck_assert_int_ne(j.id, id);
    ck_assert_int_eq(j.calendar_id, cal[1]);
    ck_assert_int_eq(j.coalesced, 1);
    bm_job_dispose(&j);
    stats(&pending, &running, &coalesced);
    ck_assert_int_eq(pending, 0);
    ck_assert_int_eq(running, 1);
}
END_TEST

START_TEST(a_failed_job_backs_off_and_merges_with_its_follow_up)
{
    bm_job_t j;
    enqueue(cal[0], 0);
    int64_t id = claim_as("w", 1000, NULL);
    ck_assert_int_eq(bm_store_job_failed(st, id, "x", 8000, "nope", err, sizeof(err)),
                     BM_ENOTFOUND);
    ck_assert_int_eq(bm_store_job_failed(st, id, "w", 8000, "backendError", err, sizeof(err)),
                     BM_OK);
    ck_assert_int_eq(next_due(), 8000);
    enqueue(cal[0], 2000); /* a notification does not cut the backoff short */
    ck_assert_int_eq(next_due(), 8000);
    ck_assert_int_eq(claim_as("w", 7999, NULL), 0);
    ck_assert_int_eq(claim_as("w", 8000, &j), id);
    ck_assert_int_eq(j.attempts, 2);
    ck_assert_int_eq(j.coalesced, 1);
    ck_assert_str_eq(j.last_error, "backendError");
    bm_job_dispose(&j);

    /* a follow-up came meanwhile: one pending job, the earlier run_at, counts summed */
    enqueue(cal[0], 8100);
    enqueue(cal[0], 8150);
    ck_assert_int_eq(bm_store_job_failed(st, id, "w", 60000, "again", err, sizeof(err)), BM_OK);
    int64_t pending, running, coalesced;
    stats(&pending, &running, &coalesced);
    ck_assert_int_eq(pending, 1);
    ck_assert_int_eq(running, 0);
    ck_assert_int_eq(coalesced, 2);
    ck_assert_int_eq(next_due(), 8150 + DEBOUNCE);
    ck_assert_int_ne(claim_as("w", 8250, &j), 0);
    ck_assert_int_eq(j.attempts, 3); /* kept, and this claim counts */
    ck_assert_str_eq(j.last_error, "again");
    bm_job_dispose(&j);
}
END_TEST

START_TEST(a_released_job_is_due_again_at_once)
{
    bm_job_t j;
    enqueue(cal[0], 0);
    int64_t id = claim_as("w", 1000, NULL);
    ck_assert_int_eq(bm_store_job_release(st, id, "other", err, sizeof(err)), BM_ENOTFOUND);
    ck_assert_int_eq(bm_store_job_release(st, id, "w", err, sizeof(err)), BM_OK);
    ck_assert_int_eq(claim_as("w2", 1001, &j), id);
    ck_assert_int_eq(j.attempts, 1); /* the released attempt did not count */
    bm_job_dispose(&j);

    /* released with a follow-up pending: they merge, due at once */
    enqueue(cal[0], 1100);
    ck_assert_int_eq(bm_store_job_release(st, id, "w2", err, sizeof(err)), BM_OK);
    ck_assert_int_ne(claim_as("w3", 1002, &j), 0);
    ck_assert_int_eq(j.calendar_id, cal[0]);
    bm_job_dispose(&j);
    ck_assert_int_eq(claim_as("w4", 1003, NULL), 0);
}
END_TEST

START_TEST(jobs_of_a_process_that_is_gone_are_taken_over_at_once)
{
    char host[200], live[300], dead[300];
    ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
    snprintf(live, sizeof(live), "%ld@%s/0/worker-0", (long)getpid(), host);
    pid_t child = fork(); /* a pid that surely is gone once reaped */
    if (child == 0)
        _exit(0);
    ck_assert_int_eq(waitpid(child, NULL, 0), child);
    snprintf(dead, sizeof(dead), "%ld@%s/0/worker-1", (long)child, host);
    enqueue(cal[0], 0);
    enqueue(cal[1], 0);
    int64_t mine = claim_as(live, 1000, NULL), gone = claim_as(dead, 1000, NULL);
    ck_assert_int_ne(mine, 0);
    ck_assert_int_ne(gone, 0);
    int64_t n = -1;
    ck_assert_int_eq(bm_store_jobs_release_dead(st, &n, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(n, 1);
    bm_job_t j;
    ck_assert_int_eq(claim_as("w", 1001, &j), gone); /* long before its lease ends */
    bm_job_dispose(&j);
    ck_assert_int_eq(claim_as("w2", 1002, NULL), 0); /* the live one's stays its own */
}
END_TEST

START_TEST(claim_inside_a_transaction_is_refused)
{
    bm_job_t j = {0};
    ck_assert_int_eq(bm_store_begin(st, err, sizeof(err)), BM_OK);
    enqueue(cal[0], 0); /* enqueues group-commit inside the caller's transaction */
    enqueue(cal[1], 0);
    ck_assert_int_eq(bm_store_job_claim(st, "w", 1000, LEASE, &j, err, sizeof(err)), BM_EINVAL);
    ck_assert_int_eq(bm_store_commit(st, err, sizeof(err)), BM_OK);
    ck_assert_int_ne(claim_as("w", 1000, NULL), 0);
}
END_TEST

/* A child: claims from its own connection until nothing is due, writing each
 * job id to fd; exits 0 when every call worked. */
static void claimer(int fd, int go, int n)
{
    bm_store_t *s = NULL;
    char e[256], c;
    char owner[32];
    snprintf(owner, sizeof(owner), "claimer%d", n);
    if (read(go, &c, 1) < 0 || bm_store_open(db, &s, e, sizeof(e)) != BM_OK)
        _exit(1);
    for (;;) {
        bm_job_t j;
        int rc = bm_store_job_claim(s, owner, bm_now_ms(), 60000, &j, e, sizeof(e));
        if (rc == BM_ENOTFOUND)
            break;
        if (rc != BM_OK || write(fd, &j.id, sizeof(j.id)) != sizeof(j.id) ||
            bm_store_job_done(s, j.id, owner, e, sizeof(e)) != BM_OK) {
            fprintf(stderr, "claimer %d: %s\n", n, e);
            _exit(1);
        }
        bm_job_dispose(&j);
    }
    bm_store_close(s);
    _exit(0);
}

START_TEST(processes_claiming_at_once_never_share_a_job)
{
    enum { JOBS = 200, CLAIMERS = 4 };
    int64_t acc, seen[JOBS] = {0}, id;
    int ids[2], go[2];
    pid_t pids[CLAIMERS];
    ck_assert_int_eq(bm_store_account_add(st, "many", NULL, NULL, 0, &acc, err, sizeof(err)),
                     BM_OK);
    ck_assert_int_eq(bm_store_begin(st, err, sizeof(err)), BM_OK);
    for (int i = 0; i < JOBS; i++) {
        char gid[32];
        int64_t c;
        snprintf(gid, sizeof(gid), "many%d", i);
        ck_assert_int_eq(bm_store_calendar_upsert(st, acc, gid, gid, "UTC", "owner", false, &c, err,
                                                  sizeof(err)),
                         BM_OK);
        enqueue(c, 0);
    }
    ck_assert_int_eq(bm_store_commit(st, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(pipe(ids), 0);
    ck_assert_int_eq(pipe(go), 0);
    for (int i = 0; i < CLAIMERS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            close(ids[0]);
            close(go[1]);
            claimer(ids[1], go[0], i);
        }
    }
    close(ids[1]);
    close(go[0]);
    close(go[1]); /* go */
    size_t n = 0;
    while (read(ids[0], &id, sizeof(id)) == sizeof(id)) {
        ck_assert_uint_lt(n, JOBS);
        for (size_t k = 0; k < n; k++)
            ck_assert_msg(seen[k] != id, "job %lld claimed twice", (long long)id);
        seen[n++] = id;
    }
    close(ids[0]);
    for (int i = 0; i < CLAIMERS; i++) {
        int status = 0;
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a claimer failed");
    }
    ck_assert_uint_eq(n, JOBS);
    int64_t pending, running, coalesced;
    stats(&pending, &running, &coalesced);
    ck_assert_int_eq(pending + running, 0);
}
END_TEST

/* ---- watch channels ---- */

static void add_channel(const char *id, int64_t c, int64_t now, const char *resource,
                        int64_t expiration)
{
    ck_assert_msg(bm_store_channel_add(st, id, c, now, err, sizeof(err)) == BM_OK, "%s", err);
    if (resource != NULL)
        ck_assert_msg(
            bm_store_channel_set_granted(st, id, resource, expiration, err, sizeof(err)) == BM_OK,
            "%s", err);
}

/* The current channel's id of calendar c at now ("" when none); static buffer. */
static const char *current(int64_t c, int64_t now)
{
    static char id[80];
    bm_channel_t ch = {0};
    int rc = bm_store_channel_current(st, c, now, &ch, err, sizeof(err));
    ck_assert_msg(rc == BM_OK || rc == BM_ENOTFOUND, "%s", err);
    snprintf(id, sizeof(id), "%s", rc == BM_OK ? ch.id : "");
    bm_channel_dispose(&ch);
    return id;
}

/* The ids of the channels to stop at now, joined by spaces; static buffer. */
static const char *to_stop(int64_t now)
{
    static char ids[256];
    bm_channel_t *ch = NULL;
    size_t n = 0;
    ck_assert_int_eq(bm_store_channels_to_stop(st, now, &ch, &n, err, sizeof(err)), BM_OK);
    ids[0] = '\0';
    for (size_t i = 0; i < n; i++)
        snprintf(ids + strlen(ids), sizeof(ids) - strlen(ids), "%s%s", i ? " " : "", ch[i].id);
    bm_store_channels_free(ch, n);
    return ids;
}

START_TEST(the_current_channel_is_the_live_one_expiring_last)
{
    bm_channel_t ch = {0};
    add_channel("ch1", cal[0], 1000, NULL, 0);
    ck_assert_int_eq(bm_store_channel_add(st, "ch1", cal[1], 1000, err, sizeof(err)), BM_EEXIST);
    ck_assert_int_eq(bm_store_channel_get(st, "ch1", &ch, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(ch.calendar_id, cal[0]);
    ck_assert_ptr_null(ch.resource_id);
    ck_assert_int_eq(ch.expiration, 0);
    ck_assert_int_eq(ch.created_at, 1000);
    bm_channel_dispose(&ch);
    ck_assert_str_eq(current(cal[0], 1000), ""); /* not granted yet */
    ck_assert_int_eq(bm_store_channel_set_granted(st, "ch1", "res0", 50000, err, sizeof(err)),
                     BM_OK);
    ck_assert_str_eq(current(cal[0], 2000), "ch1");
    ck_assert_str_eq(to_stop(2000), "");

    /* renewal: the new channel replaces the old, which is due for a stop */
    add_channel("ch2", cal[0], 3000, "res0", 90000);
    ck_assert_str_eq(current(cal[0], 3000), "ch2");
    ck_assert_str_eq(to_stop(3000), "ch1");
    ck_assert_int_eq(bm_store_channel_stopped(st, "ch1", 3100, err, sizeof(err)), BM_OK);
    ck_assert_str_eq(to_stop(3100), "");
    ck_assert_int_eq(bm_store_channel_stopped(st, "nope", 3100, err, sizeof(err)), BM_ENOTFOUND);
    ck_assert_int_eq(bm_store_channel_get(st, "nope", &ch, err, sizeof(err)), BM_ENOTFOUND);

    /* expiry: nothing is current, the lapsed channel is due for a stop */
    ck_assert_str_eq(current(cal[0], 90000), "");
    ck_assert_str_eq(to_stop(90000), "ch2");
    ck_assert_str_eq(current(cal[1], 0), "");
}
END_TEST

/* A notification at now; answers the status. */
static int notify(const char *id, const char *resource, int64_t now)
{
    int status = 0;
    ck_assert_msg(bm_store_notification_enqueue(st, id, resource, now, DEBOUNCE, MAX_DELAY, GRACE,
                                                &status, err, sizeof(err)) == BM_OK,
                  "%s", err);
    return status;
}

static int64_t jobs_and_coalesced(void)
{
    int64_t pending, running, coalesced;
    stats(&pending, &running, &coalesced);
    return pending + running + coalesced;
}

START_TEST(notifications_enqueue_the_sync_of_their_channel)
{
    bm_job_t j;
    /* the first message may come before the watch answer */
    add_channel("new", cal[0], 1000, NULL, 0);
    ck_assert_int_eq(notify("new", "res0", 1001), 200);
    ck_assert_int_eq(jobs_and_coalesced(), 1);
    ck_assert_int_eq(bm_store_channel_set_granted(st, "new", "res0", 90000, err, sizeof(err)),
                     BM_OK);
    ck_assert_int_eq(notify("new", "res0", 1002), 200);
    ck_assert_int_eq(jobs_and_coalesced(), 2); /* coalesced */
    ck_assert_int_eq(notify("new", "other", 1003), 400);
    ck_assert_int_eq(notify("new", NULL, 1003), 400);
    ck_assert_int_eq(jobs_and_coalesced(), 2);
    ck_assert_int_ne(claim_as("w", 2000, &j), 0);
    ck_assert_int_eq(j.calendar_id, cal[0]);
    ck_assert_str_eq(j.reason, "push");
    bm_job_dispose(&j);

    /* unknown, with no channel on its resource: 404, nothing to record */
    ck_assert_int_eq(notify("ghost", "res9", 3000), 404);
    ck_assert_str_eq(to_stop(3000), "");
    /* unknown, on a known resource: 404, recorded for a stop */
    ck_assert_int_eq(notify("forgotten", "res0", 3000), 404);
    ck_assert_str_eq(to_stop(3000), "forgotten");
    ck_assert_str_eq(current(cal[0], 3001), "new");
    bm_channel_t ch = {0};
    ck_assert_int_eq(bm_store_channel_get(st, "forgotten", &ch, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(ch.calendar_id, cal[0]);
    bm_channel_dispose(&ch);
}
END_TEST

START_TEST(a_stopped_channel_still_enqueues_and_is_stopped_again)
{
    add_channel("old", cal[1], 1000, "res1", 9000000);
    ck_assert_int_eq(bm_store_channel_stopped(st, "old", 2000, err, sizeof(err)), BM_OK);
    ck_assert_str_eq(current(cal[1], 2000), "");
    /* within the grace (the seam of a renewal): synced, not stopped again */
    ck_assert_int_eq(notify("old", "res1", 3000), 200);
    ck_assert_int_eq(jobs_and_coalesced(), 1); /* a change may be behind it */
    ck_assert_str_eq(to_stop(3000), "");
    /* past it: a stray, stopped again, nothing enqueued */
    ck_assert_int_eq(notify("old", "res1", 2000 + GRACE), 200);
    ck_assert_int_eq(jobs_and_coalesced(), 1);
    ck_assert_str_eq(to_stop(2000 + GRACE), "old");
    ck_assert_str_eq(current(cal[1], 2000 + GRACE), ""); /* recorded, never current again */
    /* stopped again: a stray within a minute of that asks for no stop */
    ck_assert_int_eq(bm_store_channel_stopped(st, "old", 3000 + GRACE, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(bm_store_channel_stray(st, "old", "res1", 4000 + GRACE, err, sizeof(err)), 0);
    ck_assert_str_eq(to_stop(4000 + GRACE), "");
    ck_assert_int_eq(bm_store_channel_stray(st, "old", "res1", 63000 + GRACE, err, sizeof(err)), 0);
    ck_assert_str_eq(to_stop(63000 + GRACE), "old");
    ck_assert_int_eq(bm_store_channel_stopped(st, "old", 63000 + GRACE, err, sizeof(err)), BM_OK);

    /* a row whose watch answer was lost: after a minute it is due for a stop */
    add_channel("orphan", cal[1], 1000, NULL, 0);
    ck_assert_int_eq(notify("orphan", "res1", 30000), 200);
    ck_assert_str_eq(to_stop(30000), "");
    ck_assert_int_eq(notify("orphan", "res1", 62000), 200);
    ck_assert_str_eq(to_stop(62000), "orphan");
    ck_assert_int_eq(bm_store_channel_stopped(st, "orphan", 62000, err, sizeof(err)), BM_OK);

    /* a replaced channel enqueues too, and is due for a stop as it was */
    add_channel("a", cal[2], 1000, "res2", 50000);
    add_channel("b", cal[2], 1000, "res2", 60000);
    int64_t before = jobs_and_coalesced();
    ck_assert_int_eq(notify("a", "res2", 3000), 200);
    ck_assert_int_eq(jobs_and_coalesced(), before + 1);
    ck_assert_str_eq(to_stop(3000), "a");
}
END_TEST

START_TEST(purge_keeps_what_a_notification_can_still_name)
{
    int64_t n = -1;
    add_channel("stopped-expired", cal[0], 1000, "res0", 5000);
    add_channel("stopped-live", cal[0], 1000, "res0", 90000);
    add_channel("never-granted", cal[0], 1000, NULL, 0);
    add_channel("live", cal[0], 1000, "res0", 80000);
    ck_assert_int_eq(bm_store_channel_stopped(st, "stopped-expired", 2000, err, sizeof(err)), 0);
    ck_assert_int_eq(bm_store_channel_stopped(st, "stopped-live", 2000, err, sizeof(err)), 0);
    ck_assert_int_eq(bm_store_channels_purge(st, 10000, &n, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(n, 2);
    bm_channel_t ch = {0};
    ck_assert_int_eq(bm_store_channel_get(st, "stopped-live", &ch, err, sizeof(err)), BM_OK);
    bm_channel_dispose(&ch);
    ck_assert_int_eq(bm_store_channel_get(st, "never-granted", &ch, err, sizeof(err)),
                     BM_ENOTFOUND);
    ck_assert_str_eq(current(cal[0], 10000), "live");
}
END_TEST

START_TEST(calendar_mode_is_set_with_or_without_sync_state)
{
    bm_calendar_t c = {0};
    ck_assert_int_eq(bm_store_calendar_set_mode(st, cal[0], BM_MODE_PUSH, err, sizeof(err)), 0);
    ck_assert_int_eq(bm_store_calendar_get(st, cal[0], &c, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(c.mode, BM_MODE_PUSH);
    bm_calendar_dispose(&c);
    ck_assert_int_eq(bm_store_sync_state_save(st, cal[0], "tok", true, "k", err, sizeof(err)), 0);
    ck_assert_int_eq(bm_store_calendar_set_mode(st, cal[0], BM_MODE_POLL, err, sizeof(err)), 0);
    ck_assert_int_eq(bm_store_calendar_get(st, cal[0], &c, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(c.mode, BM_MODE_POLL);
    ck_assert_str_eq(c.sync_token, "tok"); /* the rest of the row stays */
    bm_calendar_dispose(&c);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("queue");
    TCase *tc = tcase_create("queue");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, notifications_for_a_pending_job_coalesce);
    tcase_add_test(tc, debounce_follows_the_latest_notification_within_max_delay);
    tcase_add_test(tc, enqueue_while_running_makes_one_follow_up);
    tcase_add_test(tc, claims_take_the_earliest_due_first);
    tcase_add_test(tc, done_and_extend_need_the_owner);
    tcase_add_test(tc, an_expired_lease_is_taken_over);
    tcase_add_test(tc, a_failed_job_backs_off_and_merges_with_its_follow_up);
    tcase_add_test(tc, a_released_job_is_due_again_at_once);
    tcase_add_test(tc, jobs_of_a_process_that_is_gone_are_taken_over_at_once);
    tcase_add_test(tc, claim_inside_a_transaction_is_refused);
    tcase_add_test(tc, processes_claiming_at_once_never_share_a_job);
    suite_add_tcase(s, tc);
    tc = tcase_create("channels");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, the_current_channel_is_the_live_one_expiring_last);
    tcase_add_test(tc, notifications_enqueue_the_sync_of_their_channel);
    tcase_add_test(tc, a_stopped_channel_still_enqueues_and_is_stopped_again);
    tcase_add_test(tc, purge_keeps_what_a_notification_can_still_name);
    tcase_add_test(tc, calendar_mode_is_set_with_or_without_sync_state);
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
