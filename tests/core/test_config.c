/* tests/core/test_config.c: defaults, parsing, and one clear error per bad file. */
#include "core/config.h"
#include "core/util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

static void write_cfg(const char *text)
{
    strcpy(path, "/tmp/bm_test_config_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

START_TEST(defaults_match_the_table)
{
    bm_config_t c;
    bm_config_init(&c);
    ck_assert_str_eq(c.google.api_base_url, "https://www.googleapis.com/calendar/v3");
    ck_assert_str_eq(c.google.batch_url, "https://www.googleapis.com/batch/calendar/v3");
    ck_assert_str_eq(c.google.token_url, "https://oauth2.googleapis.com/token");
    ck_assert_int_eq(c.engine.batch_size, 50);
    ck_assert_str_eq(c.sync.block_summary, "Busy");
    ck_assert(!c.sync.respect_deleted_blocks);
    ck_assert_ptr_null(c.google.client_secret);
    bm_config_dispose(&c);
}
END_TEST

START_TEST(file_values_override_and_paths_resolve)
{
    write_cfg("; comment\n[store]\npath = state.db\nkey_file = /abs/k.key\n"
              "[engine]\nbatch_size = 100\n[sync]\nrespect_deleted_blocks = yes\n"
              "block_summary = Occupied\n[log]\nlevel = debug\n");
    bm_config_t c;
    char err[256];
    bm_config_init(&c);
    ck_assert_int_eq(bm_config_load(&c, path, err, sizeof(err)), BM_OK);
    ck_assert_str_eq(c.store.path, "/tmp/state.db");
    ck_assert_str_eq(c.store.key_file, "/abs/k.key");
    ck_assert_int_eq(c.engine.batch_size, 100);
    ck_assert(c.sync.respect_deleted_blocks);
    ck_assert_str_eq(c.sync.block_summary, "Occupied");
    ck_assert_int_eq(c.log.level, 0);
    bm_config_dispose(&c);
    unlink(path);
}
END_TEST

/* Each bad file gives one error naming file:line and the key, and no changes. */
static const struct {
    const char *text;
    const char *expect;
} bad[] = {
    {"[engine]\nworkers = 2\nbatch_size = 5000\n",
     ":3: [engine] batch_size: \"5000\" is not a whole number from 1 to 1000"},
    {"[engine]\nworkerz = 2\n", ":2: [engine] workerz: unknown key"},
    {"[nope]\nx = 1\n", ":2: [nope] x: unknown key"},
    {"[sync]\nrespect_deleted_blocks = maybe\n",
     ":2: [sync] respect_deleted_blocks: \"maybe\" is not true or false"},
    {"[google]\napi_base_url = ftp://x\n",
     ":2: [google] api_base_url: \"ftp://x\" is not an http(s) URL"},
    {"[google]\ntoken_url = http://oauth2.googleapis.com/token\n",
     ":2: [google] token_url: \"http://oauth2.googleapis.com/token\" must use https"},
    {"[google]\napi_base_url = http://127.0.0.1@evil.example/v3\n",
     ":2: [google] api_base_url: \"http://127.0.0.1@evil.example/v3\" must use https"},
    {"[google]\nbatch_url = http://localhost.evil.example/b\n",
     ":2: [google] batch_url: \"http://localhost.evil.example/b\" must use https"},
    {"[google]\nauth_url = http://[::2]/auth\n",
     ":2: [google] auth_url: \"http://[::2]/auth\" must use https"},
    {"[gateway]\nlisten = 8443\n", ":2: [gateway] listen: \"8443\" is not host:port"},
    {"[log]\nlevel = loud\n", ":2: [log] level: \"loud\" is not one of"},
    {"[sync]\npast_days = 7x\n", ":2: [sync] past_days: \"7x\" is not a whole number"},
    {"[sync]\nthis line has no equals sign\n", ":2: syntax error"},
    {"[sync]\nblock_summary = Bu\xffsy\n", ":2: [sync] block_summary: not UTF-8 text"},
    {"[sync]\nblock_summary = \xed\xa0\x80\n", ":2: [sync] block_summary: not UTF-8 text"},
    {"[sync\npast_days = 1\n", ":1: unterminated section header '[sync' (no ']')"},
    {"; ok\n  [engine\n", ":2: unterminated section header '[engine' (no ']')"},
    {"[google client_secret=GOCSPX-abc&=\n", ":1: unterminated section header (no ']')"},
    /* [group G] rules */
    {"[group work]\nexclude_title = (unclosed\n",
     ":2: [group work] exclude_title: \"(unclosed\" is not a POSIX extended regex"},
    {"[group work]\ninclude_title = a{2,1}\n",
     ":2: [group work] include_title: \"a{2,1}\" is not a POSIX extended regex"},
    {"[group work]\nevent_types = default,meeting\n",
     ":2: [group work] event_types: \"meeting\" is not one of default, outOfOffice"},
    {"[group work]\nevent_types = default,birthday\n",
     ":2: [group work] event_types: birthday events never make anyone busy"},
    {"[group work]\nevent_types = ,\n", ":2: [group work] event_types: no event type given"},
    {"[group work]\nworking_hours = Mon-Fri 8-18\n",
     ":2: [group work] working_hours: \"Mon-Fri 8-18\": expected HH:MM-HH:MM"},
    {"[group work]\nworking_hours = Mon-Fri 18:00-08:00\n",
     ":2: [group work] working_hours: \"Mon-Fri 18:00-08:00\": a time range must end after it "
     "starts"},
    {"[group work]\nworking_hours = Mo-Fr 08:00-18:00\n",
     ":2: [group work] working_hours: \"Mo-Fr 08:00-18:00\": expected a day"},
    {"[group work]\nworking_hours = Mon-Fri\n",
     ":2: [group work] working_hours: \"Mon-Fri\": expected a blank"},
    {"[group work]\nworking_hours = Mon 08:00-25:00\n",
     ":2: [group work] working_hours: \"Mon 08:00-25:00\": expected HH:MM-HH:MM"},
    {"[group work]\nworking_hours = Mon 08:00-12:00 and more\n",
     ":2: [group work] working_hours: \"Mon 08:00-12:00 and more\": unexpected text"},
    {"[group work]\ntime_zone = Mars/Olympus_Mons\n",
     ":2: [group work] time_zone: \"Mars/Olympus_Mons\" is not a known IANA time zone"},
    {"[group work]\nbuffer_before = 1441\n",
     ":2: [group work] buffer_before: \"1441\" is not a whole number from 0 to 1440"},
    {"[group work]\nbuffer_after = -5\n",
     ":2: [group work] buffer_after: \"-5\" is not a whole number from 0 to 1440"},
    {"[group work]\ncopy_title = sometimes\n",
     ":2: [group work] copy_title: \"sometimes\" is not true or false"},
    {"[group work]\ncolour = red\n", ":2: [group work] colour: unknown key"},
    {"[group work]\nall_day = false\nall_day = true\n",
     ":3: [group work] all_day: given twice in this section"},
    {"[group work]\nall_day = false\n[sync]\npast_days = 3\n[group work]\n",
     ":5: [group work]: a second section of this group (the first is on line 1)"},
    {"[group bad/name]\nall_day = false\n", ":1: [group bad/name]: group name"},
    {"[group work]\nblock_summary = Bu\xffsy\n", ":2: [group work] block_summary: not UTF-8 text"},
    {"[group work]\nexclude_title = \xff\n", ":2: [group work] exclude_title: not UTF-8 text"},
    /* bounded repetitions that expand past BM_REGEX_EXPANSION_MAX: seconds per title */
    {"[group work]\nexclude_title = (a{1,255}){1,255}b\n",
     ":2: [group work] exclude_title: \"(a{1,255}){1,255}b\" is too costly to match"},
    {"[group work]\ninclude_title = ((x{1,10}){1,10}){1,10}\n",
     ":2: [group work] include_title: \"((x{1,10}){1,10}){1,10}\" is too costly"},
    {"[group work]\nexclude_title = [a-z]{300}\n",
     ":2: [group work] exclude_title: \"[a-z]{300}\" is too costly"},
    {"[group work]\nexclude_title = (ab|cd){200,}\n",
     ":2: [group work] exclude_title: \"(ab|cd){200,}\" is too costly"},
    {"[group work]\nexclude_title = (x{1,200}){,200}\n",
     ":2: [group work] exclude_title: \"(x{1,200}){,200}\" is too costly"},
};

START_TEST(bad_values_name_file_line_and_key)
{
    bm_config_t c;
    char err[512];
    write_cfg(bad[_i].text);
    bm_config_init(&c);
    ck_assert_int_eq(bm_config_load(&c, path, err, sizeof(err)), BM_EINVAL);
    ck_assert_msg(strstr(err, bad[_i].expect) != NULL, "got: %s", err);
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "no file name in: %s", err);
    ck_assert_int_eq(c.engine.batch_size, 50); /* defaults only after a failure */
    ck_assert_int_eq(c.engine.workers, 4);
    bm_config_dispose(&c);
    unlink(path);
}
END_TEST

START_TEST(regex_cost_is_bounded_and_long_titles_are_cut)
{
    /* within the bound: expansions up to 256 extra atoms, brackets and
     * escapes as one atom, a '{' that is no interval as itself */
    write_cfg("[group work]\nexclude_title = (.{1,16}){1,16}x|^(lunch|gym)\\b\n"
              "include_title = [[:alpha:]{}]{1,200}\\{x{2}|a{,3}\n");
    bm_config_t c;
    char err[256];
    bm_config_init(&c);
    ck_assert_msg(bm_config_load(&c, path, err, sizeof(err)) == BM_OK, "%s", err);
    const bm_rules_t *r = bm_config_rules(&c, "work");
    ck_assert(bm_regex_match(&r->exclude_title, "Lunch with Bob"));
    /* a title is matched on its first BM_REGEX_TITLE_MAX bytes, cut at a character */
    char title[BM_REGEX_TITLE_MAX + 64];
    memset(title, 'y', sizeof(title));
    memcpy(title + BM_REGEX_TITLE_MAX - 1, "\xc3\xa9lunch", 7); /* é straddles the cut */
    title[sizeof(title) - 1] = '\0';
    bm_config_dispose(&c);
    write_cfg("[group work]\nexclude_title = (\xc3\xa9|y)lunch\ninclude_title = y$\n");
    bm_config_init(&c);
    ck_assert_msg(bm_config_load(&c, path, err, sizeof(err)) == BM_OK, "%s", err);
    r = bm_config_rules(&c, "work");
    ck_assert(!bm_regex_match(&r->exclude_title, title)); /* past the cut */
    ck_assert(bm_regex_match(&r->include_title, title));  /* ends before the é */
    title[BM_REGEX_TITLE_MAX - 1] = '\0';
    ck_assert(bm_regex_match(&r->include_title, title));
    bm_config_dispose(&c);
    unlink(path);
}
END_TEST

/* "client_secret S&=T" (no '=' after the key): inih reads the key
 * "client_secret S&"; the error must not repeat it, nor any other odd key. */
START_TEST(a_line_without_its_equals_sign_is_not_echoed)
{
    static const char *const text[] = {
        "[google]\nclient_secret GOCSPX-s3cret&=rest\n",
        "[google]\n1//0gRefreshTok=x\n",
        "[google]\nClient_Secret = GOCSPX-s3cret\n",
    };
    for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++) {
        bm_config_t c;
        char err[512];
        write_cfg(text[i]);
        bm_config_init(&c);
        ck_assert_int_eq(bm_config_load(&c, path, err, sizeof(err)), BM_EINVAL);
        ck_assert_msg(strstr(err, ":2: [google] not a key name") != NULL, "got: %s", err);
        ck_assert_msg(strstr(err, "s3cret") == NULL && strstr(err, "GOCSPX") == NULL &&
                          strstr(err, "Refresh") == NULL && strstr(err, "Client") == NULL,
                      "echoed: %s", err);
        bm_config_dispose(&c);
        unlink(path);
    }
}
END_TEST

/* Plain http is fine on loopback only (the emulator, a local proxy). */
START_TEST(plain_http_only_on_loopback)
{
    static const char *const ok[] = {
        "https://www.googleapis.com/calendar/v3",
        "http://127.0.0.1:8080/calendar/v3",
        "http://127.3.4.5/x",
        "http://localhost:9/t",
        "http://LOCALHOST/t",
        "http://[::1]:443/t",
        "http://localhost",
        "http://127.0.0.1?x=1",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        bm_config_t c;
        char err[512];
        bm_config_init(&c);
        ck_assert_msg(bm_config_set(&c, "google", "token_url", ok[i], err, sizeof(err)) == BM_OK,
                      "%s: %s", ok[i], err);
        bm_config_dispose(&c);
    }
    static const char *const bad_urls[] = {
        "http://oauth2.googleapis.com/token",
        "http://128.0.0.1/t",
        "http://127.0.0.1.evil/t",
        "http://localhost:80@evil/t",
        "http://[::1].evil/t",
        "http://[::ffff:1.2.3.4]/t",
        "http://",
        "http://0x7f000001/t",
    };
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        bm_config_t c;
        char err[512];
        bm_config_init(&c);
        ck_assert_msg(bm_config_set(&c, "google", "token_url", bad_urls[i], err, sizeof(err)) ==
                          BM_EINVAL,
                      "accepted %s", bad_urls[i]);
        ck_assert_msg(strstr(err, "must use https") != NULL, "got: %s", err);
        bm_config_dispose(&c);
    }
}
END_TEST

/* Lines past inih's buffer are refused with their number, not cut or misnumbered;
 * a line of exactly the limit is fine. */
START_TEST(over_long_lines_are_refused_with_their_number)
{
    char text[1024], err[512];
    bm_config_t c;
    for (int pass = 0; pass < 2; pass++) {
        int len = pass == 0 ? 198 : 199; /* the line's characters, without the newline */
        int n = snprintf(text, sizeof(text), "[sync]\npast_days = 3\nblock_summary = ");
        memset(text + n, 'x', (size_t)(len - (int)strlen("block_summary = ")));
        n += len - (int)strlen("block_summary = ");
        snprintf(text + n, sizeof(text) - (size_t)n, "\npast_days = 4\n");
        write_cfg(text);
        bm_config_init(&c);
        int rc = bm_config_load(&c, path, err, sizeof(err));
        if (pass == 0) {
            ck_assert_msg(rc == BM_OK, "got: %s", err);
            ck_assert_int_eq((int)strlen(c.sync.block_summary), 198 - 16);
            ck_assert_int_eq(c.sync.past_days, 4);
        } else {
            ck_assert_int_eq(rc, BM_EINVAL);
            ck_assert_msg(strstr(err, ":3: line longer than 198 characters (the limit)") != NULL,
                          "got: %s", err);
        }
        bm_config_dispose(&c);
        unlink(path);
    }
}
END_TEST

START_TEST(a_nul_byte_is_not_text)
{
    static const char text[] = "\0[sync]\npast_days = 3\n";
    char err[512];
    bm_config_t c;
    strcpy(path, "/tmp/bm_test_config_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
    close(fd);
    bm_config_init(&c);
    ck_assert_int_eq(bm_config_load(&c, path, err, sizeof(err)), BM_EINVAL);
    ck_assert_msg(strstr(err, ":1: a NUL byte: not a text file") != NULL, "got: %s", err);
    bm_config_dispose(&c);
    unlink(path);
}
END_TEST

START_TEST(unreadable_file_is_an_io_error)
{
    bm_config_t c;
    char err[512];
    bm_config_init(&c);
    ck_assert_int_eq(bm_config_load(&c, "/nonexistent/busymirror.ini", err, sizeof(err)), BM_EIO);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/busymirror.ini"));
    bm_config_dispose(&c);
}
END_TEST

START_TEST(a_directory_is_not_a_config_file)
{
    bm_config_t c;
    char err[512];
    bm_config_init(&c);
    ck_assert_int_eq(bm_config_load(&c, "/tmp", err, sizeof(err)), BM_EIO);
    ck_assert_ptr_nonnull(strstr(err, "/tmp: not a regular file"));
    ck_assert_int_eq(bm_config_set(&c, "sync", "block_summary", "Occupé 忙", err, sizeof(err)),
                     BM_OK); /* UTF-8 beyond ASCII is fine */
    bm_config_dispose(&c);
}
END_TEST

START_TEST(group_sections_hold_each_groups_rules)
{
    write_cfg("[sync]\nblock_summary = Occupied\n"
              "[group work]\nblock_summary = Busy ({calendar})\ncopy_title = yes\n"
              "exclude_title = ^(lunch|gym)\nevent_types = default, workingLocation\n"
              "all_day = false\ntentative = false\nunanswered = false\n"
              "working_hours = Mon-Thu 09:00-12:00,13:00-17:00; Fri 22:00-24:00\n"
              "time_zone = Europe/Berlin\nbuffer_before = 15\nbuffer_after = 1440\n"
              "skip_shared_events = false\n"
              "[group empty]\n");
    bm_config_t c;
    char err[256];
    bm_config_init(&c);
    ck_assert_msg(bm_config_load(&c, path, err, sizeof(err)) == BM_OK, "%s", err);
    ck_assert_uint_eq(c.n_groups, 2);
    const bm_rules_t *r = bm_config_rules(&c, "work");
    ck_assert_str_eq(r->group, "work");
    ck_assert_str_eq(r->block_summary, "Busy ({calendar})");
    ck_assert(r->copy_title && !r->all_day && !r->tentative && !r->unanswered);
    ck_assert(!r->skip_shared_events);
    ck_assert_str_eq(r->exclude_title.text, "^(lunch|gym)");
    ck_assert(bm_regex_match(&r->exclude_title, "Gym session"));
    ck_assert(!bm_regex_match(&r->exclude_title, "Board"));
    ck_assert_ptr_null(r->include_title.text);
    ck_assert_uint_eq(r->event_types, BM_ETYPE_DEFAULT | BM_ETYPE_WORKING_LOCATION);
    ck_assert_int_eq(r->working_hours.n[1], 2); /* Monday */
    ck_assert_int_eq(r->working_hours.iv[1][1].start, 13 * 60);
    ck_assert_int_eq(r->working_hours.iv[1][1].end, 17 * 60);
    ck_assert_int_eq(r->working_hours.n[5], 1); /* Friday */
    ck_assert_int_eq(r->working_hours.iv[5][0].end, 1440);
    ck_assert_int_eq(r->working_hours.n[0] + r->working_hours.n[6], 0);
    ck_assert_str_eq(r->time_zone, "Europe/Berlin");
    ck_assert_int_eq(r->buffer_before, 15);
    ck_assert_int_eq(r->buffer_after, 1440);
    /* an empty section and a group without one: the defaults */
    const bm_rules_t *e = bm_config_rules(&c, "empty"), *d = bm_config_rules(&c, "default");
    ck_assert_str_eq(e->group, "empty");
    ck_assert_ptr_null(d->group);
    const bm_rules_t *both[] = {e, d};
    for (size_t i = 0; i < 2; i++) {
        ck_assert_ptr_null(both[i]->block_summary);
        ck_assert(!both[i]->copy_title && both[i]->all_day && both[i]->tentative);
        ck_assert(both[i]->unanswered && both[i]->skip_shared_events);
        ck_assert_uint_eq(both[i]->event_types, BM_ETYPE_BUSY_DEFAULT);
        ck_assert_ptr_null(both[i]->working_hours.text);
        ck_assert_int_eq(both[i]->buffer_before + both[i]->buffer_after, 0);
    }
    /* printed back: the effective rules, [sync] block_summary where unset */
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    bm_config_print(&c, f);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(out, "[group work]\nblock_summary = Busy ({calendar})\n"));
    ck_assert_ptr_nonnull(strstr(out, "event_types = default,workingLocation\n"));
    ck_assert_ptr_nonnull(strstr(out, "[group empty]\nblock_summary = Occupied\n"));
    free(out);
    bm_config_dispose(&c);
    unlink(path);
}
END_TEST

START_TEST(print_masks_secrets)
{
    bm_config_t c;
    char err[256], *out = NULL;
    size_t len = 0;
    bm_config_init(&c);
    ck_assert_int_eq(
        bm_config_set(&c, "google", "client_secret", "GOCSPX-very-secret", err, sizeof(err)),
        BM_OK);
    FILE *f = open_memstream(&out, &len);
    bm_config_print(&c, f);
    fclose(f);
    ck_assert_ptr_null(strstr(out, "GOCSPX-very-secret"));
    ck_assert_ptr_nonnull(strstr(out, "client_secret = ********"));
    ck_assert_ptr_nonnull(strstr(out, "batch_size = 50"));
    free(out);
    bm_config_dispose(&c);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, defaults_match_the_table);
    tcase_add_test(tc, file_values_override_and_paths_resolve);
    tcase_add_loop_test(tc, bad_values_name_file_line_and_key, 0, sizeof(bad) / sizeof(bad[0]));
    tcase_add_test(tc, a_line_without_its_equals_sign_is_not_echoed);
    tcase_add_test(tc, plain_http_only_on_loopback);
    tcase_add_test(tc, over_long_lines_are_refused_with_their_number);
    tcase_add_test(tc, a_nul_byte_is_not_text);
    tcase_add_test(tc, unreadable_file_is_an_io_error);
    tcase_add_test(tc, a_directory_is_not_a_config_file);
    tcase_add_test(tc, group_sections_hold_each_groups_rules);
    tcase_add_test(tc, regex_cost_is_bounded_and_long_titles_are_cut);
    tcase_add_test(tc, print_masks_secrets);
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
