/* tests/cli/test_cli.c: the real busymirror binary's usage errors and exit codes. */
#include "bm_build.h"

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/bm_test_cli_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Runs busymirror with args (a shell fragment) in dir, with `env` (e.g.
 * "BUSYMIRROR_CONFIG=x") in its environment; returns the exit code and fills
 * out/errout with stdout and stderr. */
static int run_env(const char *env, const char *args, char *out, size_t outlen, char *errout,
                   size_t errlen)
{
    char cmd[1024], of[128], ef[128];
    snprintf(of, sizeof(of), "%s/out", dir);
    snprintf(ef, sizeof(ef), "%s/err", dir);
    snprintf(cmd, sizeof(cmd), "cd %s && env -u BUSYMIRROR_CONFIG %s %s %s >%s 2>%s", dir, env,
             getenv("BUSYMIRROR"), args, of, ef);
    int st = system(cmd);
    ck_assert(WIFEXITED(st));
    FILE *f = fopen(of, "r");
    size_t n = fread(out, 1, outlen - 1, f);
    out[n] = '\0';
    fclose(f);
    f = fopen(ef, "r");
    n = fread(errout, 1, errlen - 1, f);
    errout[n] = '\0';
    fclose(f);
    return WEXITSTATUS(st);
}

static int run(const char *args, char *out, size_t outlen, char *errout, size_t errlen)
{
    return run_env("", args, out, outlen, errout, errlen);
}

static char out[65536], err[65536];

START_TEST(help_and_version)
{
    ck_assert_int_eq(run("--help", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: busymirror"));
    ck_assert_ptr_nonnull(strstr(out, "[engine] batch_size"));
    ck_assert_int_eq(run("--version", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(out, "busymirror "));
    ck_assert_int_eq(run("sync --help", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(out, "--dry-run"));
}
END_TEST

/* The commit the source tree is at ("unknown" when git cannot tell), as
 * meson's vcs_tag() wrote it into the binary. */
static void source_commit(char *buf, size_t len)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "git -C '%s' describe --always --dirty --abbrev=12 --exclude='*' 2>/dev/null",
             getenv("BM_SOURCE_DIR"));
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    if (fgets(buf, (int)len, p) == NULL)
        buf[0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    if (pclose(p) != 0 || buf[0] == '\0')
        snprintf(buf, len, "unknown");
}

START_TEST(version_names_the_commit)
{
    char commit[128], want[256];
    source_commit(commit, sizeof(commit));
    snprintf(want, sizeof(want), "busymirror %s (commit %s)\n", BM_VERSION, commit);
    ck_assert_int_eq(run("--version", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_str_eq(out, want);
    ck_assert_int_eq(run("-V", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_str_eq(out, want);
}
END_TEST

START_TEST(unknown_command_and_flag_exit_2)
{
    ck_assert_int_eq(run("frobnicate", out, sizeof(out), err, sizeof(err)), 2);
    ck_assert_ptr_nonnull(strstr(err, "unknown command 'frobnicate'"));
    ck_assert_int_eq(run("--bogus status", out, sizeof(out), err, sizeof(err)), 2);
    ck_assert_ptr_nonnull(strstr(err, "--bogus"));
    ck_assert_int_eq(run("", out, sizeof(out), err, sizeof(err)), 2);
    ck_assert_ptr_nonnull(strstr(err, "usage:"));
    ck_assert_int_eq(run("config frob", out, sizeof(out), err, sizeof(err)), 2);
}
END_TEST

START_TEST(bad_config_exits_78_and_creates_nothing)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/bm.ini", dir);
    FILE *f = fopen(path, "w");
    fputs("[store]\npath = state.db\n[engine]\nbatch_size = 0\n", f);
    fclose(f);
    ck_assert_int_eq(run("-c bm.ini config check", out, sizeof(out), err, sizeof(err)), 78);
    ck_assert_ptr_nonnull(strstr(err, "bm.ini:4: [engine] batch_size"));
    ck_assert_ptr_null(strchr(strchr(err, '\n') + 1, '\n')); /* one line */
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "%s/state.db", dir);
    struct stat sb;
    ck_assert_int_ne(stat(cmd, &sb), 0); /* nothing created */
    ck_assert_int_eq(run("-c missing.ini config check", out, sizeof(out), err, sizeof(err)), 78);
    ck_assert_ptr_nonnull(strstr(err, "missing.ini"));
    /* the environment variable names the file too */
    ck_assert_int_eq(
        run_env("BUSYMIRROR_CONFIG=bm.ini", "config check", out, sizeof(out), err, sizeof(err)),
        78);
    ck_assert_ptr_nonnull(strstr(err, "bm.ini:4:"));
}
END_TEST

START_TEST(config_check_masks_secrets)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/ok.ini", dir);
    FILE *f = fopen(path, "w");
    fputs("[google]\nclient_id = abc\nclient_secret = GOCSPX-topsecret\n", f);
    fclose(f);
    ck_assert_int_eq(run("-c ok.ini config check", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_ptr_null(strstr(out, "GOCSPX-topsecret"));
    ck_assert_ptr_nonnull(strstr(out, "client_id = abc"));
}
END_TEST

/* Writes text to dir/name (mode 0600). */
static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(path, 0600), 0);
}

static bool exists(const char *name)
{
    char path[256];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &sb) == 0;
}

static bool one_line(const char *s)
{
    const char *nl = strchr(s, '\n');
    return nl != NULL && nl[1] == '\0';
}

START_TEST(no_config_exits_78_saying_where_it_looked)
{
    char env[256];
    snprintf(env, sizeof(env), "-u XDG_CONFIG_HOME HOME=%s", dir);
    ck_assert_int_eq(run_env(env, "status", out, sizeof(out), err, sizeof(err)), 78);
    ck_assert_ptr_nonnull(strstr(err, "/etc/busymirror/busymirror.ini"));
    ck_assert_ptr_nonnull(strstr(err, "/.config/busymirror/busymirror.ini"));
    ck_assert_msg(one_line(err), "not one line: %s", err);
    ck_assert(!exists("busymirror.db"));
    ck_assert_int_eq(run_env("BUSYMIRROR_CONFIG=", "sync", out, sizeof(out), err, sizeof(err)), 78);
    ck_assert(!exists("busymirror.db"));
    /* what needs no configuration still works */
    ck_assert_int_eq(run_env(env, "config keys", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_int_eq(run_env(env, "--version", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_int_eq(run_env(env, "status --help", out, sizeof(out), err, sizeof(err)), 0);
    /* the XDG default, then ~/.config */
    ck_assert_int_eq(mkdir(strcat(strcpy(env, dir), "/xdg"), 0700), 0);
    ck_assert_int_eq(mkdir(strcat(env, "/busymirror"), 0700), 0);
    write_file("xdg/busymirror/busymirror.ini", "[sync]\npast_days = 3\n");
    snprintf(env, sizeof(env), "XDG_CONFIG_HOME=%s/xdg", dir);
    ck_assert_int_eq(run_env(env, "config check", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(out, "/xdg/busymirror/busymirror.ini"));
    ck_assert_ptr_nonnull(strstr(out, "past_days = 3"));
    ck_assert_int_eq(mkdir(strcat(strcpy(env, dir), "/.config"), 0700), 0);
    ck_assert_int_eq(mkdir(strcat(env, "/busymirror"), 0700), 0);
    write_file(".config/busymirror/busymirror.ini", "[sync]\npast_days = 4\n");
    snprintf(env, sizeof(env), "-u XDG_CONFIG_HOME HOME=%s", dir);
    ck_assert_int_eq(run_env(env, "config check", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(out, "past_days = 4"));
}
END_TEST

START_TEST(missing_credentials_exit_78_at_once)
{
    write_file("bm.ini", "[store]\npath = bm.db\nkey_file = bm.key\n[google]\n"
                         "api_base_url = http://127.0.0.1:1/calendar/v3\n"
                         "token_url = http://127.0.0.1:1/token\nclient_id = abc\n");
    write_file("t.token", "1//refresh-abc\n");
    ck_assert_int_eq(run("-c bm.ini account add --name a --refresh-token-file t.token", out,
                         sizeof(out), err, sizeof(err)),
                     0);
    const char *cmds[] = {"calendar discover --account-id a", "sync", "sync --account-id a"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char args[128];
        snprintf(args, sizeof(args), "-c bm.ini %s", cmds[i]);
        ck_assert_int_eq(run(args, out, sizeof(out), err, sizeof(err)), 78);
        ck_assert_ptr_nonnull(strstr(err, "[google] client_secret"));
        ck_assert_msg(one_line(err), "not one line: %s", err);
    }
}
END_TEST

/* A refresh token file is one line of printable ASCII without blanks. */
static const struct {
    const char *text;
    size_t len;
    const char *expect;
} bad_tokens[] = {
    {"{\"refresh_token\": \"1//x\"}\n", 0, "not one refresh token"},
    {"1//abc\n1//def\n", 0, "more than one line"},
    {"  1//abc\n", 0, "not one refresh token"},
    {"1//abc\n\n", 0, "more than one line"},
    {"\n", 0, "empty"},
    {"1//a\x01\x02\n", 0, "not one refresh token"},
    {"\xff\xfe\x00\x01", 4, "not one refresh token"},
};

START_TEST(refresh_token_file_shape_is_checked)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/t.token", dir);
    FILE *f = fopen(path, "wb");
    size_t len = bad_tokens[_i].len ? bad_tokens[_i].len : strlen(bad_tokens[_i].text);
    ck_assert_int_eq(fwrite(bad_tokens[_i].text, 1, len, f), len);
    fclose(f);
    write_file("bm.ini", "[store]\npath = bm.db\nkey_file = bm.key\n");
    ck_assert_int_eq(run("-c bm.ini account add --name a --refresh-token-file t.token", out,
                         sizeof(out), err, sizeof(err)),
                     2);
    ck_assert_msg(strstr(err, "t.token") != NULL && strstr(err, bad_tokens[_i].expect) != NULL,
                  "got: %s", err);
    ck_assert_msg(one_line(err), "not one line: %s", err);
    ck_assert_int_eq(run("-c bm.ini account list", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_ptr_null(strstr(out, "\na "));
}
END_TEST

START_TEST(refresh_token_file_too_long_random_or_a_directory)
{
    write_file("bm.ini", "[store]\npath = bm.db\nkey_file = bm.key\n");
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "head -c 4096 /dev/urandom >%s/rand.token && mkdir %s/d.token", dir,
             dir);
    ck_assert_int_eq(system(cmd), 0);
    char big[700];
    memset(big, 'a', sizeof(big) - 2);
    big[sizeof(big) - 2] = '\n';
    big[sizeof(big) - 1] = '\0';
    write_file("big.token", big);
    const char *files[] = {"rand.token", "d.token", "big.token", "none.token"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char args[200];
        snprintf(args, sizeof(args), "-c bm.ini account add --name a --refresh-token-file %s",
                 files[i]);
        ck_assert_int_eq(run(args, out, sizeof(out), err, sizeof(err)), 2);
        ck_assert_msg(strstr(err, files[i]) != NULL, "no file name in: %s", err);
        ck_assert_msg(one_line(err), "not one line: %s", err);
    }
    ck_assert_ptr_nonnull(strstr(err, "none.token: cannot read"));
}
END_TEST

START_TEST(names_are_checked_and_hints_quote_them)
{
    write_file("bm.ini", "[store]\npath = bm.db\nkey_file = bm.key\n");
    write_file("t.token", "1//refresh-abc\n");
    const char *bad[] = {"''", "'two words'", "\"$(printf 'a\\nb')\"",
                         "\"$(printf '\\033[31mred')\"",
                         "\"$(head -c 5000 /dev/zero | tr '\\0' a)\""};
    char args[512];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(args, sizeof(args), "-c bm.ini account add --name %s --refresh-token-file t.token",
                 bad[i]);
        ck_assert_int_eq(run(args, out, sizeof(out), err, sizeof(err)), 2);
        ck_assert_msg(strstr(err, "account name") != NULL, "got: %s", err);
        snprintf(args, sizeof(args), "-c bm.ini account login --name %s", bad[i]);
        ck_assert_int_eq(run(args, out, sizeof(out), err, sizeof(err)), 2);
        ck_assert_msg(strstr(err, "account name") != NULL, "got: %s", err);
        snprintf(args, sizeof(args), "-c bm.ini calendar enable --calendar-id x --group %s",
                 bad[i]);
        ck_assert_int_eq(run(args, out, sizeof(out), err, sizeof(err)), 2);
        ck_assert_msg(strstr(err, "group name") != NULL, "got: %s", err);
    }
    ck_assert(!exists("bm.db"));
    ck_assert_int_eq(run("-c bm.ini account add --name work --refresh-token-file t.token", out,
                         sizeof(out), err, sizeof(err)),
                     0);
    ck_assert_msg(strstr(out, "busymirror calendar discover --account-id 'work'") != NULL,
                  "got: %s", out);
}
END_TEST

static unsigned mode_of(const char *name)
{
    char path[256];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    ck_assert_int_eq(lstat(path, &sb), 0);
    return (unsigned)(sb.st_mode & 07777);
}

START_TEST(store_files_are_made_0600_and_symlinks_refused)
{
    write_file("bm.ini", "[store]\npath = bm.db\nkey_file = bm.key\n");
    ck_assert_int_eq(run("-c bm.ini status", out, sizeof(out), err, sizeof(err)), 0);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "cd %s && touch bm.db-wal bm.db-shm && chmod 644 bm.db bm.db-wal "
             "bm.db-shm",
             dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(run("-c bm.ini status", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_uint_eq(mode_of("bm.db"), 0600);
    /* SQLite removes -wal and -shm at the last close: the warnings show them fixed */
    ck_assert_msg(strstr(err, "bm.db-wal") != NULL && strstr(err, "bm.db-shm") != NULL, "got: %s",
                  err);
    ck_assert_msg(strstr(err, "mode=0644") != NULL && strstr(err, "bm.db") != NULL, "got: %s", err);
    snprintf(cmd, sizeof(cmd), "cd %s && mv bm.db real.db && ln -s real.db bm.db", dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(run("-c bm.ini status", out, sizeof(out), err, sizeof(err)), 1);
    ck_assert_msg(strstr(err, "symbolic link") != NULL, "got: %s", err);
}
END_TEST

START_TEST(a_config_with_the_secret_readable_by_others_warns_once)
{
    write_file("bm.ini", "[google]\nclient_id = a\nclient_secret = GOCSPX-x\n");
    ck_assert_int_eq(run("-c bm.ini config check", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_str_eq(err, "");
    char path[256];
    snprintf(path, sizeof(path), "%s/bm.ini", dir);
    ck_assert_int_eq(chmod(path, 0644), 0);
    ck_assert_int_eq(run("-c bm.ini config check", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, "bm.ini") != NULL && strstr(err, "chmod 600") != NULL, "got: %s",
                  err);
    ck_assert_msg(one_line(err), "not one line: %s", err);
}
END_TEST

START_TEST(one_message_for_a_missing_argument_and_conflicts_named)
{
    write_file("bm.ini", "[store]\npath = bm.db\nkey_file = bm.key\n[google]\n"
                         "client_id = a\nclient_secret = b\n");
    const char *missing[] = {"account add --name", "sync --timeout", "calendar list --account-id",
                             "reset --calendar-id", "-c"};
    char args[256];
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        snprintf(args, sizeof(args), "-c bm.ini %s", missing[i]);
        ck_assert_int_eq(run(args, out, sizeof(out), err, sizeof(err)), 2);
        ck_assert_msg(strstr(err, "needs an argument") != NULL, "%s: %s", args, err);
        ck_assert_msg(strstr(err, "unknown") == NULL && strstr(err, "requires") == NULL, "%s: %s",
                      args, err);
    }
    static const struct {
        const char *args, *expect;
    } conflicts[] = {
        {"undo --last --audit-id 3", "--last and --audit-id conflict"},
        {"dlq retry --id 5 --all", "--id and --all conflict"},
        {"reset --calendar-id x --dry-run --confirm", "--dry-run and --confirm conflict"},
    };
    for (size_t i = 0; i < sizeof(conflicts) / sizeof(conflicts[0]); i++) {
        snprintf(args, sizeof(args), "-c bm.ini %s", conflicts[i].args);
        ck_assert_int_eq(run(args, out, sizeof(out), err, sizeof(err)), 2);
        ck_assert_msg(strstr(err, conflicts[i].expect) != NULL, "%s: %s", args, err);
    }
}
END_TEST

START_TEST(help_says_what_options_take_and_keys_show_ranges)
{
    ck_assert_int_eq(run("sync --help", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_msg(strstr(out, "the account's name") != NULL, "got: %s", out);
    ck_assert_int_eq(run("undo --help", out, sizeof(out), err, sizeof(err)), 0);
    const char *undone[] = {"reset", "cleanup", "disable", "regroup", "account remov"};
    for (size_t i = 0; i < sizeof(undone) / sizeof(undone[0]); i++)
        ck_assert_msg(strstr(out, undone[i]) != NULL, "no %s in: %s", undone[i], out);
    ck_assert_int_eq(run("--help", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(out, "129"));
    ck_assert_ptr_nonnull(strstr(out, "143"));
    ck_assert_int_eq(run("config keys", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_msg(strstr(out, "1..1000") != NULL, "no range in: %s", out);
}
END_TEST

START_TEST(config_check_checks_folders_and_shows_the_batch_cap)
{
    write_file("a.ini", "[store]\npath = nodir/bm.db\n");
    ck_assert_int_eq(run("-c a.ini config check", out, sizeof(out), err, sizeof(err)), 78);
    ck_assert_msg(strstr(err, "[store] path") != NULL && strstr(err, "/nodir") != NULL, "got: %s",
                  err);
    write_file("b.ini", "[store]\nkey_file = /nonexistent/k.key\n");
    ck_assert_int_eq(run("-c b.ini config check", out, sizeof(out), err, sizeof(err)), 78);
    ck_assert_msg(strstr(err, "[store] key_file") != NULL, "got: %s", err);
    write_file("c.ini", "[google]\nuser_quota = 60\n[engine]\nbatch_size = 50\n");
    ck_assert_int_eq(run("-c c.ini config check", out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_msg(strstr(out, "effective batch size: 10") != NULL, "got: %s", out);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, help_and_version);
    tcase_add_test(tc, version_names_the_commit);
    tcase_add_test(tc, unknown_command_and_flag_exit_2);
    tcase_add_test(tc, bad_config_exits_78_and_creates_nothing);
    tcase_add_test(tc, config_check_masks_secrets);
    tcase_add_test(tc, no_config_exits_78_saying_where_it_looked);
    tcase_add_test(tc, missing_credentials_exit_78_at_once);
    tcase_add_loop_test(tc, refresh_token_file_shape_is_checked, 0,
                        sizeof(bad_tokens) / sizeof(bad_tokens[0]));
    tcase_add_test(tc, refresh_token_file_too_long_random_or_a_directory);
    tcase_add_test(tc, names_are_checked_and_hints_quote_them);
    tcase_add_test(tc, store_files_are_made_0600_and_symlinks_refused);
    tcase_add_test(tc, a_config_with_the_secret_readable_by_others_warns_once);
    tcase_add_test(tc, one_message_for_a_missing_argument_and_conflicts_named);
    tcase_add_test(tc, help_says_what_options_take_and_keys_show_ranges);
    tcase_add_test(tc, config_check_checks_folders_and_shows_the_batch_cap);
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
