/* tests/cli/test_cli.c: the real busymirror binary's usage errors and exit codes. */
#include "bm_build.h"

#include <check.h>
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
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
