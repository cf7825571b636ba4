/*
 * bench/gateway/bench_gateway.c: runs the gateway for bench_gateway.sh, over TLS
 * on 127.0.0.1, until SIGINT or SIGTERM.
 *
 *   bench_gateway --cert C --key K --port-file F --token-file F [--noop] [--db PATH] [--threads N]
 *
 * Default: every notification batch is committed to a SQLite WAL file with
 * synchronous=FULL (a tiny jobs upsert, one transaction per batch), as serve's
 * queue would. --noop answers 200 at once (the gateway's answer_at_once): the
 * same h2o and TLS setup doing no work, the baseline the ratio is taken against.
 * The token of channel "bench-channel" under a fixed key goes to --token-file.
 */
#include "gateway/gateway.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bench_db {
    sqlite3 *db;
    sqlite3_stmt *upsert;
    size_t batches, notes;
} bench_db_t;

static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "bench_gateway: %s: %s\n", sql, msg != NULL ? msg : "?");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int db_open(bench_db_t *b, const char *path)
{
    if (sqlite3_open(path, &b->db) != SQLITE_OK || exec(b->db, "PRAGMA journal_mode=WAL") != 0 ||
        exec(b->db, "PRAGMA synchronous=FULL") != 0 ||
        exec(b->db, "CREATE TABLE IF NOT EXISTS jobs (calendar TEXT PRIMARY KEY, "
                    "pending INTEGER NOT NULL, last_ms INTEGER NOT NULL)") != 0)
        return -1;
    if (sqlite3_prepare_v2(b->db,
                           "INSERT INTO jobs (calendar, pending, last_ms) VALUES (?1, 1, ?2) "
                           "ON CONFLICT (calendar) DO UPDATE SET pending = pending + 1, "
                           "last_ms = excluded.last_ms",
                           -1, &b->upsert, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_gateway: prepare: %s\n", sqlite3_errmsg(b->db));
        return -1;
    }
    return 0;
}

static int commit(void *ud, bm_gateway_note_t *notes, size_t n)
{
    bench_db_t *b = ud;
    if (exec(b->db, "BEGIN IMMEDIATE") != 0)
        return BM_ESTORE;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_text(b->upsert, 1, notes[i].channel_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(b->upsert, 2, notes[i].received_ms);
        int rc = sqlite3_step(b->upsert);
        sqlite3_reset(b->upsert);
        if (rc != SQLITE_DONE) {
            exec(b->db, "ROLLBACK");
            return BM_ESTORE;
        }
    }
    if (exec(b->db, "COMMIT") != 0) {
        exec(b->db, "ROLLBACK");
        return BM_ESTORE;
    }
    for (size_t i = 0; i < n; i++)
        notes[i].status = 200;
    b->batches++;
    b->notes += n;
    return BM_OK;
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL, *port_file = NULL, *token_file = NULL;
    const char *db_path = "bench-gateway.db";
    bool noop = false;
    int threads = 1;
    for (int i = 1; i < argc; i++) {
        bool more = i + 1 < argc;
        if (strcmp(argv[i], "--noop") == 0)
            noop = true;
        else if (more && strcmp(argv[i], "--cert") == 0)
            cert = argv[++i];
        else if (more && strcmp(argv[i], "--key") == 0)
            key = argv[++i];
        else if (more && strcmp(argv[i], "--port-file") == 0)
            port_file = argv[++i];
        else if (more && strcmp(argv[i], "--token-file") == 0)
            token_file = argv[++i];
        else if (more && strcmp(argv[i], "--db") == 0)
            db_path = argv[++i];
        else if (more && strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_gateway --cert C --key K --port-file F --token-file F "
                            "[--noop] [--db PATH] [--threads N]\n");
            return 2;
        }
    }
    if (cert == NULL || key == NULL || port_file == NULL || token_file == NULL)
        return 2;

    bench_db_t b = {0};
    if (db_open(&b, db_path) != 0)
        return 1;
    bm_gateway_opts_t o;
    memset(&o, 0, sizeof(o));
    o.listen = "127.0.0.1:0";
    o.tls_cert = cert;
    o.tls_key = key;
    o.public_url = "https://bench.invalid/google/notify";
    o.threads = threads;
    memset(o.key, 0x42, sizeof(o.key));
    o.commit = commit;
    o.commit_ud = &b;
    o.answer_at_once = noop;
    char token[BM_CRYPTO_CHANNEL_TOKEN_LEN + 1], port[16], err[256];
    if (bm_crypto_channel_token(o.key, "bench-channel", token) != BM_OK ||
        write_text(token_file, token) != 0)
        return 1;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits it: sigwait below gets them */
    bm_gateway_t *gw = NULL;
    if (bm_gateway_start(&o, &gw, err, sizeof(err)) != BM_OK) {
        fprintf(stderr, "bench_gateway: %s\n", err);
        return 1;
    }
    snprintf(port, sizeof(port), "%d\n", bm_gateway_port(gw));
    if (write_text(port_file, port) != 0)
        return 1;
    int sig;
    sigwait(&set, &sig);
    bm_gateway_free(gw);
    fprintf(stderr, "bench_gateway: %s: %zu commits of %zu notifications (%.1f a commit)\n",
            noop ? "noop" : "commit", b.batches, b.notes,
            b.batches > 0 ? (double)b.notes / (double)b.batches : 0.0);
    sqlite3_finalize(b.upsert);
    sqlite3_close(b.db);
    return 0;
}
