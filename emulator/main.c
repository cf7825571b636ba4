/* emulator/main.c: gcal-emulator's command line, startup and shutdown. */
#include "emulator/emulator.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t stop_flag;

typedef enum { OPT_STR, OPT_INT, OPT_BOOL } opt_type_t;

/* One declarative table: name, type, target, help (README lists the same keys). */
typedef struct opt {
    const char *name;
    opt_type_t type;
    void *target;
    int64_t min, max;
    const char *arg;
    const char *help;
} opt_t;

static int64_t port_v, ttl_v, token_ttl_v, seed_v;
static bool help_v;

static const opt_t opts[] = {
    {"bind", OPT_STR, &emu.cfg.bind, 0, 0, "ADDR", "IPv4 address to listen on (127.0.0.1)"},
    {"port", OPT_INT, &port_v, 0, 65535, "N", "TCP port; 0 picks a free one (0)"},
    {"port-file", OPT_STR, &emu.cfg.port_file, 0, 0, "FILE",
     "write the bound port to FILE (atomically)"},
    {"db", OPT_STR, &emu.cfg.db, 0, 0, "FILE", "persist the world in SQLite FILE (mode 0600)"},
    {"seed-demo", OPT_BOOL, &emu.cfg.seed_demo, 0, 0, NULL,
     "start with the demo world (README) when empty"},
    {"client-id", OPT_STR, &emu.cfg.client_id, 0, 0, "ID", "OAuth client id (emu-client-id)"},
    {"client-secret", OPT_STR, &emu.cfg.client_secret, 0, 0, "S",
     "OAuth client secret (emu-client-secret)"},
    {"max-channel-ttl", OPT_INT, &ttl_v, 1, 315360000, "SECONDS",
     "cap on a push channel's ttl (604800)"},
    {"token-ttl", OPT_INT, &token_ttl_v, 1, 86400 * 365, "SECONDS", "access token lifetime (3600)"},
    {"rng-seed", OPT_INT, &seed_v, 0, INT64_MAX, "N", "seed of the fault RNG (1)"},
    {"verbose", OPT_BOOL, &emu.cfg.verbose, 0, 0, NULL, "log every request on stderr"},
    {"help", OPT_BOOL, &help_v, 0, 0, NULL, "show this help"},
};
#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static void usage(FILE *f)
{
    fprintf(f, "usage: gcal-emulator [options]\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        char left[48];
        snprintf(left, sizeof(left), "--%s%s%s", opts[i].name, opts[i].arg ? " " : "",
                 opts[i].arg ? opts[i].arg : "");
        fprintf(f, "  %-28s %s\n", left, opts[i].help);
    }
}

static int parse_args(int argc, char **argv)
{
    struct option lo[N_OPTS + 1];
    for (size_t i = 0; i < N_OPTS; i++) {
        lo[i].name = opts[i].name;
        lo[i].has_arg = opts[i].type == OPT_BOOL ? no_argument : required_argument;
        lo[i].flag = NULL;
        lo[i].val = 256 + (int)i;
    }
    memset(&lo[N_OPTS], 0, sizeof(lo[N_OPTS]));
    opterr = 0;
    int c, idx;
    while ((c = getopt_long(argc, argv, ":", lo, &idx)) != -1) {
        if (c < 256) {
            fprintf(stderr, "gcal-emulator: %s option: %s (see --help)\n",
                    c == ':' ? "missing argument for" : "unknown",
                    argv[optind - 1] != NULL ? argv[optind - 1] : "?");
            return BM_EINVAL;
        }
        const opt_t *o = &opts[c - 256];
        if (o->type == OPT_BOOL) {
            *(bool *)o->target = true;
        } else if (o->type == OPT_STR) {
            *(const char **)o->target = optarg;
        } else {
            char *end;
            errno = 0;
            long long v = strtoll(optarg, &end, 10);
            if (errno != 0 || *optarg == '\0' || *end != '\0' || v < o->min || v > o->max) {
                fprintf(stderr, "gcal-emulator: --%s: expected an integer in %lld..%lld\n", o->name,
                        (long long)o->min, (long long)o->max);
                return BM_EINVAL;
            }
            *(int64_t *)o->target = v;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "gcal-emulator: unexpected argument: %s\n", argv[optind]);
        return BM_EINVAL;
    }
    return BM_OK;
}

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int write_port_file(const char *path, int port, char *err, size_t errlen)
{
    char *tmp = bm_sprintf("%s.tmp.%d", path, (int)getpid());
    int rc = BM_OK;
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        rc = bm_err(err, errlen, BM_EIO, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    int w = fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || w < 0) {
        rc = bm_err(err, errlen, BM_EIO, "%s: write failed", tmp);
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        rc = bm_err(err, errlen, BM_EIO, "rename %s: %s", path, strerror(errno));
        unlink(tmp);
    }
out:
    free(tmp);
    return rc;
}

int main(int argc, char **argv)
{
    char err[512];
    int exit_code = BM_EXIT_OK;
    emu.cfg.bind = "127.0.0.1";
    emu.cfg.client_id = "emu-client-id";
    emu.cfg.client_secret = "emu-client-secret";
    ttl_v = 604800;
    token_ttl_v = 3600;
    seed_v = 1;
    if (parse_args(argc, argv) != BM_OK)
        return BM_EXIT_USAGE;
    if (help_v) {
        usage(stdout);
        return BM_EXIT_OK;
    }
    emu.cfg.port = (int)port_v;
    emu.cfg.max_channel_ttl = ttl_v;
    emu.cfg.token_ttl = token_ttl_v;
    emu.cfg.rng_seed = (uint64_t)seed_v;
    emu.rng = emu.cfg.rng_seed;
    bm_log_add_secret(emu.cfg.client_secret);

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
        fprintf(stderr, "gcal-emulator: sigaction: %s\n", strerror(errno));
        return BM_EXIT_FAIL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "gcal-emulator: curl_global_init failed\n");
        return BM_EXIT_FAIL;
    }
    emu_world_init(&emu.world);
    if (emu.cfg.db != NULL) {
        if (emu_persist_open(emu.cfg.db, err, sizeof(err)) != BM_OK ||
            emu_persist_load(err, sizeof(err)) != BM_OK) {
            fprintf(stderr, "gcal-emulator: %s\n", err);
            exit_code = BM_EXIT_FAIL;
            goto out;
        }
    }
    if (emu.cfg.seed_demo && emu.world.users.n == 0 && emu_seed_demo(err, sizeof(err)) != BM_OK) {
        fprintf(stderr, "gcal-emulator: demo: %s\n", err);
        exit_code = BM_EXIT_FAIL;
        goto out;
    }
    int port;
    if (emu_http_start(emu.cfg.bind, emu.cfg.port, &port, err, sizeof(err)) != BM_OK) {
        fprintf(stderr, "gcal-emulator: %s\n", err);
        exit_code = BM_EXIT_UNAVAILABLE;
        goto out;
    }
    snprintf(emu.base_url, sizeof(emu.base_url), "http://%s:%d", emu.cfg.bind, port);
    if (emu_push_start() != BM_OK) {
        fprintf(stderr, "gcal-emulator: cannot start the push thread\n");
        exit_code = BM_EXIT_FAIL;
        goto out;
    }
    printf("gcal-emulator listening on %s\n", emu.base_url);
    fflush(stdout);
    if (emu.cfg.port_file != NULL &&
        write_port_file(emu.cfg.port_file, port, err, sizeof(err)) != BM_OK) {
        fprintf(stderr, "gcal-emulator: %s\n", err);
        exit_code = BM_EXIT_FAIL;
        stop_flag = 1;
    }
    emu_http_run(&stop_flag);
    emu_push_stop();
    if (!emu_http_stop()) {
        /* clients still hold connections h2o owns: nothing left to flush but the db */
        emu_persist_close();
        fflush(NULL);
        _exit(exit_code);
    }
out:
    emu_push_stop();
    emu_world_dispose(&emu.world);
    emu_persist_close();
    curl_global_cleanup();
    return exit_code;
}
