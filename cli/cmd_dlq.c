/* cli/cmd_dlq.c: `busymirror dlq list|retry|purge`: block writes that failed for good. */
#include "cli/cli.h"
#include "core/util.h"
#include "engine/engine.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void dlq_json(bm_cli_json_t *j, const bm_dead_letter_t *d)
{
    bm_cli_json_open(j, NULL, false);
    bm_cli_json_int(j, "id", d->id);
    bm_cli_json_time(j, "failed_at", d->failed_at);
    bm_cli_json_str(j, "calendar", d->gcal_id);
    bm_cli_json_str(j, "block", d->block_id);
    bm_cli_json_str(j, "op", d->op == BM_OUTBOX_PUT ? "put" : "delete");
    bm_cli_json_int(j, "attempts", d->attempts);
    bm_cli_json_str(j, "error", d->error);
    bm_cli_json_close(j, false);
}

static int dlq_list(bm_store_t *st, bool json)
{
    bm_dead_letter_t *d = NULL;
    bm_cli_json_t j = {0};
    size_t n = 0;
    char err[512];
    int rc = BM_EXIT_OK;
    if (bm_store_dead_letters(st, &d, &n, err, sizeof(err)) != BM_OK) {
        bm_cli_print_error("dlq", err);
        return BM_EXIT_FAIL;
    }
    if (json) {
        bm_cli_json_begin(&j);
        bm_cli_json_open(&j, "dead_letters", true);
        for (size_t i = 0; i < n; i++)
            dlq_json(&j, &d[i]);
        bm_cli_json_close(&j, true);
        rc = bm_cli_json_end(&j, "dlq");
        goto out;
    }
    printf("%-6s %-20s %-44s %-40s %-6s %-8s %s\n", "ID", "FAILED", "CALENDAR", "BLOCK", "OP",
           "ATTEMPTS", "ERROR");
    for (size_t i = 0; i < n; i++) {
        char when[40], id[1024], block[1024], error[1024];
        bm_cli_fmt_time(d[i].failed_at, when, sizeof(when));
        printf("%-6lld %-20s %-44s %-40s %-6s %-8d %s\n", (long long)d[i].id, when,
               bm_cli_text(d[i].gcal_id, id, sizeof(id)),
               bm_cli_text(d[i].block_id, block, sizeof(block)),
               d[i].op == BM_OUTBOX_PUT ? "put" : "delete", d[i].attempts,
               d[i].error != NULL ? bm_cli_text(d[i].error, error, sizeof(error)) : "");
    }
    printf("%zu dead letters\n", n);
out:
    bm_store_dead_letters_free(d, n);
    return rc;
}

int bm_cmd_dlq(bm_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"id", required_argument, NULL, 'i'},
                                         {"all", no_argument, NULL, 'a'},
                                         {"older-than", required_argument, NULL, 'o'},
                                         {"confirm", no_argument, NULL, 'y'},
                                         {"json", no_argument, NULL, 'j'},
                                         {NULL, 0, NULL, 0}};
    const bm_cli_command_t *self = bm_cli_find("dlq");
    long long id = 0, days = 0;
    bool all = false, confirm = false, json = false;
    bm_store_t *st;
    bm_engine_t *e = NULL;
    int64_t n = 0;
    char err[1024], *end;
    int c, rc;
    if (argc < 2)
        return bm_cli_usage_error(self, "expected a subcommand: list, retry, purge");
    const char *sub = argv[1];
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
        case 'o': {
            long long v = strtoll(optarg, &end, 10);
            if (*end != '\0' || v <= 0 || (c == 'o' && v > 36500))
                return bm_cli_usage_error(self, "--%s takes a number from 1 to %s, not '%s'",
                                          c == 'i' ? "id" : "older-than",
                                          c == 'i' ? "the largest id" : "36500", optarg);
            *(c == 'i' ? &id : &days) = v;
            break;
        }
        case 'a':
            all = true;
            break;
        case 'y':
            confirm = true;
            break;
        case 'j':
            json = true;
            break;
        default:
            return bm_cli_option_error(self, c, argv);
        }
    }
    if (optind != argc)
        return bm_cli_usage_error(self, "unexpected argument '%s'", argv[optind]);
    if ((rc = bm_cli_store(cli, &st)) != BM_EXIT_OK)
        return rc;
    if (json && strcmp(sub, "list") != 0)
        return bm_cli_usage_error(self, "%s takes no --json", sub);
    if (strcmp(sub, "list") == 0)
        return dlq_list(st, json);
    if (strcmp(sub, "retry") == 0) {
        if (id > 0 && all)
            return bm_cli_conflict(self, "--id", "--all");
        if ((id > 0) == all)
            return bm_cli_usage_error(self, "retry needs --id N or --all");
        if (bm_store_dead_letter_retry(st, id, &n, err, sizeof(err)) != BM_OK) {
            bm_cli_print_error("dlq", err);
            return BM_EXIT_FAIL;
        }
        if (n == 0) {
            fprintf(stderr, "busymirror dlq: no dead letter %s\n", all ? "at all" : "with that id");
            return BM_EXIT_USAGE;
        }
        if ((rc = bm_cli_engine(cli, &e)) != BM_EXIT_OK)
            return rc;
        rc = bm_engine_drain(e, err, sizeof(err)) == BM_OK ? BM_EXIT_OK : BM_EXIT_FAIL;
        bm_engine_totals_t t;
        bm_engine_totals(e, &t);
        printf("%lld dead letters back in the outbox: %lld applied, %lld dead again\n",
               (long long)n, (long long)t.applied, (long long)t.dead_letters);
        bm_engine_free(e);
        return rc != BM_EXIT_OK || t.dead_letters > 0 ? BM_EXIT_FAIL : BM_EXIT_OK;
    }
    if (strcmp(sub, "purge") == 0) {
        if (!confirm) {
            fprintf(stderr, "busymirror dlq: purge deletes dead letters for good; nothing was "
                            "deleted: run again with --confirm\n");
            return BM_EXIT_FAIL;
        }
        if (bm_store_dead_letters_purge(st, days > 0 ? bm_now() - days * 86400 : INT64_MAX, &n, err,
                                        sizeof(err)) != BM_OK) {
            bm_cli_print_error("dlq", err);
            return BM_EXIT_FAIL;
        }
        printf("%lld dead letters purged\n", (long long)n);
        return BM_EXIT_OK;
    }
    return bm_cli_usage_error(self, "unknown subcommand '%s'", sub);
}
