/* tests/core/test_crypto.c: AES-256-GCM sealing and the key file. */
#include "core/crypto.h"
#include "core/util.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/bm-crypto-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void key_of(unsigned char key[32], unsigned char fill)
{
    memset(key, fill, 32);
}

START_TEST(seal_open_round_trip)
{
    unsigned char key[32];
    key_of(key, 7);
    const char *secret = "1//0gdemo-refresh-token-Xyz_123";
    unsigned char *sealed = NULL, *plain = NULL;
    size_t sealed_len = 0, plain_len = 0;
    char err[256];
    ck_assert_int_eq(bm_crypto_seal(key, "account:alice@example.com", secret, strlen(secret),
                                    &sealed, &sealed_len, err, sizeof(err)),
                     0);
    ck_assert_uint_eq(sealed_len, strlen(secret) + BM_CRYPTO_OVERHEAD);
    ck_assert_int_eq(sealed[0], BM_CRYPTO_VERSION);
    ck_assert_ptr_null(memmem(sealed, sealed_len, "refresh", 7)); /* not in clear */
    ck_assert_int_eq(bm_crypto_open(key, "account:alice@example.com", sealed, sealed_len, &plain,
                                    &plain_len, err, sizeof(err)),
                     0);
    ck_assert_uint_eq(plain_len, strlen(secret));
    ck_assert_str_eq((char *)plain, secret); /* NUL-terminated */
    bm_crypto_free(plain, plain_len);

    /* two seals of the same text differ (random nonce) */
    unsigned char *sealed2 = NULL;
    size_t sealed2_len = 0;
    ck_assert_int_eq(bm_crypto_seal(key, "account:alice@example.com", secret, strlen(secret),
                                    &sealed2, &sealed2_len, err, sizeof(err)),
                     0);
    ck_assert(memcmp(sealed, sealed2, sealed_len) != 0);
    free(sealed);
    free(sealed2);
}
END_TEST

START_TEST(seal_empty_and_null_aad)
{
    unsigned char key[32];
    key_of(key, 1);
    unsigned char *sealed = NULL, *plain = NULL;
    size_t sealed_len = 0, plain_len = 99;
    ck_assert_int_eq(bm_crypto_seal(key, NULL, "", 0, &sealed, &sealed_len, NULL, 0), 0);
    ck_assert_uint_eq(sealed_len, BM_CRYPTO_OVERHEAD);
    ck_assert_int_eq(bm_crypto_open(key, "", sealed, sealed_len, &plain, &plain_len, NULL, 0), 0);
    ck_assert_uint_eq(plain_len, 0);
    ck_assert_str_eq((char *)plain, "");
    bm_crypto_free(plain, plain_len);
    free(sealed);
}
END_TEST

START_TEST(open_wrong_key_fails)
{
    unsigned char key[32], other[32];
    key_of(key, 7);
    key_of(other, 7);
    other[31] ^= 1;
    unsigned char *sealed = NULL, *plain = (unsigned char *)"x";
    size_t sealed_len = 0, plain_len = 5;
    char err[256] = "";
    ck_assert_int_eq(bm_crypto_seal(key, "a", "secret", 6, &sealed, &sealed_len, err, sizeof(err)),
                     0);
    ck_assert_int_eq(
        bm_crypto_open(other, "a", sealed, sealed_len, &plain, &plain_len, err, sizeof(err)),
        BM_ECRYPTO);
    ck_assert_ptr_null(plain);
    ck_assert_uint_eq(plain_len, 0);
    ck_assert_ptr_nonnull(strstr(err, "wrong key or corrupt data"));
    ck_assert_ptr_nonnull(strstr(err, "log in again"));
    free(sealed);
}
END_TEST

START_TEST(open_tampered_fails)
{
    unsigned char key[32];
    key_of(key, 3);
    unsigned char *sealed = NULL, *plain = NULL;
    size_t sealed_len = 0, plain_len = 0;
    char err[256];
    ck_assert_int_eq(
        bm_crypto_seal(key, "a", "secret text", 11, &sealed, &sealed_len, err, sizeof(err)), 0);
    /* flip every byte position in turn: nonce, ciphertext, tag (and version) */
    for (size_t i = 0; i < sealed_len; i++) {
        sealed[i] ^= 0x40;
        ck_assert_int_eq(
            bm_crypto_open(key, "a", sealed, sealed_len, &plain, &plain_len, err, sizeof(err)),
            BM_ECRYPTO);
        ck_assert_ptr_null(plain);
        sealed[i] ^= 0x40;
    }
    /* truncated */
    ck_assert_int_eq(
        bm_crypto_open(key, "a", sealed, sealed_len - 1, &plain, &plain_len, err, sizeof(err)),
        BM_ECRYPTO);
    ck_assert_int_eq(bm_crypto_open(key, "a", sealed, 5, &plain, &plain_len, err, sizeof(err)),
                     BM_ECRYPTO);
    ck_assert_int_eq(
        bm_crypto_open(key, "a", sealed, sealed_len, &plain, &plain_len, err, sizeof(err)), 0);
    bm_crypto_free(plain, plain_len);
    free(sealed);
}
END_TEST

START_TEST(open_aad_mismatch_fails)
{
    unsigned char key[32];
    key_of(key, 9);
    unsigned char *sealed = NULL, *plain = NULL;
    size_t sealed_len = 0, plain_len = 0;
    char err[256];
    ck_assert_int_eq(
        bm_crypto_seal(key, "account:alice", "tok", 3, &sealed, &sealed_len, err, sizeof(err)), 0);
    ck_assert_int_eq(bm_crypto_open(key, "account:bob", sealed, sealed_len, &plain, &plain_len, err,
                                    sizeof(err)),
                     BM_ECRYPTO);
    ck_assert_int_eq(
        bm_crypto_open(key, NULL, sealed, sealed_len, &plain, &plain_len, err, sizeof(err)),
        BM_ECRYPTO);
    ck_assert_ptr_null(plain);
    free(sealed);
}
END_TEST

/* The associated data names the kind and the whole account name, in the text
 * rows were always sealed with; a name it could not hold whole is refused. */
START_TEST(aad_is_exact_and_never_cut)
{
    char aad[BM_CRYPTO_AAD_MAX], err[256] = "", name[BM_CRYPTO_NAME_MAX + 2];
    ck_assert_int_eq(
        bm_crypto_aad(BM_CRYPTO_REFRESH_TOKEN, "alice@example.com", aad, err, sizeof(err)), 0);
    ck_assert_str_eq(aad, "account:alice@example.com");
    ck_assert_int_eq(
        bm_crypto_aad(BM_CRYPTO_ACCESS_TOKEN, "alice@example.com", aad, err, sizeof(err)), 0);
    ck_assert_str_eq(aad, "access:alice@example.com");

    /* the longest name: whole, and what the old snprintf("account:%s") made */
    memset(name, 'n', BM_CRYPTO_NAME_MAX);
    name[BM_CRYPTO_NAME_MAX] = '\0';
    char old[300];
    snprintf(old, sizeof(old), "account:%s", name);
    ck_assert_int_eq(bm_crypto_aad(BM_CRYPTO_REFRESH_TOKEN, name, aad, err, sizeof(err)), 0);
    ck_assert_str_eq(aad, old);
    unsigned char key[32];
    key_of(key, 5);
    unsigned char *sealed = NULL, *plain = NULL;
    size_t sealed_len = 0, plain_len = 0;
    ck_assert_int_eq(bm_crypto_seal(key, old, "tok", 3, &sealed, &sealed_len, err, sizeof(err)), 0);
    ck_assert_int_eq(
        bm_crypto_open(key, aad, sealed, sealed_len, &plain, &plain_len, err, sizeof(err)), 0);
    bm_crypto_free(plain, plain_len);
    /* a name that differs only in its last character does not open it */
    name[BM_CRYPTO_NAME_MAX - 1] = 'm';
    ck_assert_int_eq(bm_crypto_aad(BM_CRYPTO_REFRESH_TOKEN, name, aad, err, sizeof(err)), 0);
    ck_assert_int_eq(
        bm_crypto_open(key, aad, sealed, sealed_len, &plain, &plain_len, err, sizeof(err)),
        BM_ECRYPTO);
    free(sealed);

    /* one character more: refused, never cut to the same text */
    memset(name, 'n', BM_CRYPTO_NAME_MAX + 1);
    name[BM_CRYPTO_NAME_MAX + 1] = '\0';
    ck_assert_int_eq(bm_crypto_aad(BM_CRYPTO_REFRESH_TOKEN, name, aad, err, sizeof(err)),
                     BM_EINVAL);
    ck_assert_str_eq(aad, "");
    ck_assert_ptr_nonnull(strstr(err, "1 to 64"));
    ck_assert_int_eq(bm_crypto_aad(BM_CRYPTO_ACCESS_TOKEN, "", aad, err, sizeof(err)), BM_EINVAL);
    ck_assert_int_eq(bm_crypto_aad(BM_CRYPTO_ACCESS_TOKEN, NULL, aad, err, sizeof(err)), BM_EINVAL);
}
END_TEST

START_TEST(key_file_created_0600)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/key", dir);
    unsigned char key[32], again[32];
    char err[256] = "";
    umask(022);
    ck_assert_msg(bm_crypto_key_load(path, true, key, err, sizeof(err)) == 0, "%s", err);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(st.st_size, 32);
    /* reading it again gives the same key, create or not */
    ck_assert_int_eq(bm_crypto_key_load(path, false, again, err, sizeof(err)), 0);
    ck_assert(memcmp(key, again, 32) == 0);
    ck_assert_int_eq(bm_crypto_key_load(path, true, again, err, sizeof(err)), 0);
    ck_assert(memcmp(key, again, 32) == 0);
    /* not all zero: it came from RAND_bytes */
    unsigned char zero[32] = {0};
    ck_assert(memcmp(key, zero, 32) != 0);
    bm_crypto_wipe(key, sizeof(key));
    ck_assert(memcmp(key, zero, 32) == 0);
}
END_TEST

START_TEST(key_file_missing)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/absent", dir);
    unsigned char key[32];
    char err[256] = "";
    ck_assert_int_eq(bm_crypto_key_load(path, false, key, err, sizeof(err)), BM_ECRYPTO);
    ck_assert_ptr_nonnull(strstr(err, "does not exist"));
    ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    ck_assert_int_eq(fchmod(fd, mode), 0);
    close(fd);
}

START_TEST(key_file_bad_refused)
{
    char path[128];
    unsigned char key[32], bytes[64];
    char err[256] = "";
    memset(bytes, 'k', sizeof(bytes));

    snprintf(path, sizeof(path), "%s/group", dir);
    write_file(path, bytes, 32, 0640);
    ck_assert_int_eq(bm_crypto_key_load(path, false, key, err, sizeof(err)), BM_ECRYPTO);
    ck_assert_ptr_nonnull(strstr(err, "group or others"));
    ck_assert_ptr_nonnull(strstr(err, "0640"));

    snprintf(path, sizeof(path), "%s/world", dir);
    write_file(path, bytes, 32, 0604);
    ck_assert_int_eq(bm_crypto_key_load(path, true, key, err, sizeof(err)), BM_ECRYPTO);

    snprintf(path, sizeof(path), "%s/short", dir);
    write_file(path, bytes, 31, 0600);
    ck_assert_int_eq(bm_crypto_key_load(path, false, key, err, sizeof(err)), BM_ECRYPTO);
    ck_assert_ptr_nonnull(strstr(err, "31 bytes"));

    snprintf(path, sizeof(path), "%s/long", dir);
    write_file(path, bytes, 64, 0600);
    ck_assert_int_eq(bm_crypto_key_load(path, true, key, err, sizeof(err)), BM_ECRYPTO);
    ck_assert_ptr_nonnull(strstr(err, "64 bytes"));

    /* a directory is not a key */
    ck_assert_int_eq(bm_crypto_key_load(dir, false, key, err, sizeof(err)), BM_ECRYPTO);

    snprintf(path, sizeof(path), "%s/good", dir);
    write_file(path, bytes, 32, 0400);
    ck_assert_int_eq(bm_crypto_key_load(path, false, key, err, sizeof(err)), 0);
    ck_assert_int_eq(key[0], 'k');
}
END_TEST

START_TEST(key_file_symlink_refused)
{
    char path[128], link[128];
    unsigned char key[32], bytes[32];
    char err[256] = "";
    memset(bytes, 'k', sizeof(bytes));
    snprintf(path, sizeof(path), "%s/real", dir);
    snprintf(link, sizeof(link), "%s/link", dir);
    write_file(path, bytes, 32, 0600);
    ck_assert_int_eq(symlink(path, link), 0);
    ck_assert_int_ne(bm_crypto_key_load(link, false, key, err, sizeof(err)), 0);
}
END_TEST

/* A FIFO at the key path: refused at once (opening it used to wait for a writer). */
START_TEST(key_file_fifo_refused)
{
    char path[128];
    unsigned char key[32];
    char err[256] = "";
    snprintf(path, sizeof(path), "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    ck_assert_int_eq(bm_crypto_key_load(path, false, key, err, sizeof(err)), BM_ECRYPTO);
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
    ck_assert_ptr_null(strchr(err, '\n'));
    ck_assert_int_eq(bm_crypto_key_load(path, true, key, err, sizeof(err)), BM_ECRYPTO);
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
}
END_TEST

/* A key file of another user is refused (testable as root only); one of ours is
 * read. */
START_TEST(key_file_owner_checked)
{
    char path[128];
    unsigned char key[32], bytes[32];
    char err[256] = "";
    memset(bytes, 'k', sizeof(bytes));
    snprintf(path, sizeof(path), "%s/key", dir);
    write_file(path, bytes, 32, 0600);
    ck_assert_int_eq(bm_crypto_key_load(path, false, key, err, sizeof(err)), 0);
    if (geteuid() != 0)
        return;
    ck_assert_int_eq(chown(path, 65534, 65534), 0);
    ck_assert_int_eq(bm_crypto_key_load(path, false, key, err, sizeof(err)), BM_ECRYPTO);
    ck_assert_ptr_nonnull(strstr(err, "belongs to uid 65534"));
    ck_assert_ptr_nonnull(strstr(err, path));
}
END_TEST

/* An empty key file (what a crash in the middle of creating one used to leave)
 * is refused with words that say what to do. */
START_TEST(key_file_empty_refused)
{
    char path[128];
    unsigned char key[32];
    char err[256] = "";
    snprintf(path, sizeof(path), "%s/key", dir);
    write_file(path, "", 0, 0600);
    ck_assert_int_eq(bm_crypto_key_load(path, true, key, err, sizeof(err)), BM_ECRYPTO);
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_ptr_nonnull(strstr(err, "is empty"));
}
END_TEST

/* The first run dies while it writes the new key (here: a file size limit of 0
 * kills it with SIGXFSZ at the write). The key path must not hold a partial key
 * then: the next run makes a good one, whatever the first left behind. */
START_TEST(key_file_creation_survives_a_crash)
{
    char path[128];
    unsigned char key[32], again[32];
    char err[256] = "";
    snprintf(path, sizeof(path), "%s/key", dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rlimit rl = {.rlim_cur = 0, .rlim_max = 0};
        signal(SIGXFSZ, SIG_DFL);
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(2);
        (void)bm_crypto_key_load(path, true, key, err, sizeof(err));
        _exit(3); /* not reached when the write kills it */
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ, "status %d", status);
    ck_assert_msg(access(path, F_OK) != 0, "a partial key file was left at the key path");
    ck_assert_msg(bm_crypto_key_load(path, true, key, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(bm_crypto_key_load(path, false, again, err, sizeof(err)), 0);
    ck_assert(memcmp(key, again, 32) == 0);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(st.st_size, 32);
}
END_TEST

START_TEST(channel_token_is_an_hmac_of_the_channel_id)
{
    unsigned char k1[BM_CRYPTO_KEY_LEN], k2[BM_CRYPTO_KEY_LEN];
    memset(k1, 0x11, sizeof(k1));
    memset(k2, 0x22, sizeof(k2));
    char a[BM_CRYPTO_CHANNEL_TOKEN_LEN + 1], b[BM_CRYPTO_CHANNEL_TOKEN_LEN + 1];
    ck_assert_int_eq(bm_crypto_channel_token(k1, "chan-1", a), 0);
    ck_assert_uint_eq(strlen(a), BM_CRYPTO_CHANNEL_TOKEN_LEN);
    ck_assert_uint_eq(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                      BM_CRYPTO_CHANNEL_TOKEN_LEN);
    ck_assert_int_eq(bm_crypto_channel_token(k1, "chan-1", b), 0);
    ck_assert_str_eq(a, b); /* deterministic: derived, never stored */
    ck_assert_int_eq(bm_crypto_channel_token(k1, "chan-2", b), 0);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(bm_crypto_channel_token(k2, "chan-1", b), 0);
    ck_assert_str_ne(a, b);
    ck_assert(bm_crypto_channel_token_ok(k1, "chan-1", a));
    ck_assert(!bm_crypto_channel_token_ok(k2, "chan-1", a));
    ck_assert(!bm_crypto_channel_token_ok(k1, "chan-2", a));
    a[10] = a[10] == 'A' ? 'B' : 'A';
    ck_assert(!bm_crypto_channel_token_ok(k1, "chan-1", a));
    ck_assert(!bm_crypto_channel_token_ok(k1, "chan-1", ""));
    ck_assert_int_eq(bm_crypto_channel_token(k1, "chan-1", a), 0);
    a[BM_CRYPTO_CHANNEL_TOKEN_LEN - 1] = '\0'; /* a prefix is not the token */
    ck_assert(!bm_crypto_channel_token_ok(k1, "chan-1", a));
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("crypto");
    TCase *tc = tcase_create("seal");
    tcase_add_test(tc, seal_open_round_trip);
    tcase_add_test(tc, seal_empty_and_null_aad);
    tcase_add_test(tc, open_wrong_key_fails);
    tcase_add_test(tc, open_tampered_fails);
    tcase_add_test(tc, open_aad_mismatch_fails);
    tcase_add_test(tc, aad_is_exact_and_never_cut);
    suite_add_tcase(s, tc);
    tc = tcase_create("keyfile");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30); /* a safety net: a FIFO used to hang the load */
    tcase_add_test(tc, key_file_created_0600);
    tcase_add_test(tc, key_file_missing);
    tcase_add_test(tc, key_file_bad_refused);
    tcase_add_test(tc, key_file_symlink_refused);
    tcase_add_test(tc, key_file_fifo_refused);
    tcase_add_test(tc, key_file_owner_checked);
    tcase_add_test(tc, key_file_empty_refused);
    tcase_add_test(tc, key_file_creation_survives_a_crash);
    tcase_add_test(tc, channel_token_is_an_hmac_of_the_channel_id);
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
