/*
 * core/crypto.c: AES-256-GCM sealing of secrets at rest (OpenSSL EVP) and the
 * key file.
 */
#include "core/crypto.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void bm_crypto_wipe(void *p, size_t len)
{
    if (p != NULL && len > 0)
        OPENSSL_cleanse(p, len);
}

void bm_crypto_free(void *p, size_t len)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, len + 1); /* + the NUL bm_crypto_open adds */
    free(p);
}

static const char *ossl_error(void)
{
    static _Thread_local char buf[256];
    unsigned long e = ERR_get_error();
    if (e == 0)
        return "unknown OpenSSL error";
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return buf;
}

/* Reads exactly len bytes. */
static int read_full(int fd, unsigned char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const unsigned char *buf, size_t len)
{
    size_t put = 0;
    while (put < len) {
        ssize_t w = write(fd, buf + put, len - put);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        put += (size_t)w;
    }
    return 0;
}

/* Makes path's directory durable (the new name in it); "." when path has none. */
static int sync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *d = slash == NULL   ? bm_strdup(".")
              : slash == path ? bm_strdup("/")
                              : bm_strndup(path, (size_t)(slash - path));
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -1;
    if (fd >= 0)
        close(fd);
    free(d);
    return rc;
}

/*
 * Writes a new random key to path: into a temporary file of its directory
 * first (0600), synced, then linked to path, which never replaces a key that
 * is there. A crash on the way leaves at most a stray temporary file, never a
 * partial key at path. BM_EEXIST when another process made the key first.
 */
static int key_create(const char *path, unsigned char key[BM_CRYPTO_KEY_LEN], char *err,
                      size_t errlen)
{
    int rc = BM_OK;
    char *tmp = bm_sprintf("%s.tmp-XXXXXX", path);
    int fd = -1;
    bool made = false;
    if (RAND_bytes(key, BM_CRYPTO_KEY_LEN) != 1) {
        rc = bm_err(err, errlen, BM_ECRYPTO, "RAND_bytes: %s", ossl_error());
        goto out;
    }
    fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0) {
        rc = bm_err(err, errlen, BM_EIO, "cannot create key file %s: %s", path, strerror(errno));
        goto out;
    }
    made = true;
    if (fchmod(fd, 0600) != 0 || write_full(fd, key, BM_CRYPTO_KEY_LEN) != 0 || fsync(fd) != 0) {
        rc = bm_err(err, errlen, BM_EIO, "cannot write key file %s: %s", path, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = bm_err(err, errlen, BM_EIO, "cannot write key file %s: %s", path, strerror(errno));
        goto out;
    }
    fd = -1;
    if (link(tmp, path) != 0) {
        rc = bm_err(err, errlen, errno == EEXIST ? BM_EEXIST : BM_EIO,
                    "cannot create key file %s: %s", path, strerror(errno));
        goto out;
    }
    /* The key is in place, maybe read by others already: kept even if this fails. */
    if (sync_dir_of(path) != 0)
        rc = bm_err(err, errlen, BM_EIO, "cannot sync the directory of key file %s: %s", path,
                    strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    if (made)
        (void)unlink(tmp); /* path keeps the key when linked */
    free(tmp);
    if (rc != BM_OK)
        OPENSSL_cleanse(key, BM_CRYPTO_KEY_LEN);
    return rc;
}

/* Checks what fd (opened from path) is before anything is read from it. */
static int key_check(int fd, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return bm_err(err, errlen, BM_EIO, "cannot stat key file %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return bm_err(err, errlen, BM_ECRYPTO, "key file %s is not a regular file", path);
    if (st.st_uid != geteuid())
        return bm_err(err, errlen, BM_ECRYPTO,
                      "key file %s belongs to uid %u, not to this user (uid %u)", path,
                      (unsigned)st.st_uid, (unsigned)geteuid());
    if ((st.st_mode & 077) != 0)
        return bm_err(err, errlen, BM_ECRYPTO,
                      "key file %s is accessible by group or others (mode %04o): run chmod 600 %s",
                      path, (unsigned)(st.st_mode & 07777), path);
    if (st.st_size == 0)
        return bm_err(err, errlen, BM_ECRYPTO,
                      "key file %s is empty (its creation was interrupted?): restore it from "
                      "backup, or remove it and log in again",
                      path);
    if (st.st_size != BM_CRYPTO_KEY_LEN)
        return bm_err(err, errlen, BM_ECRYPTO, "key file %s has %lld bytes, a key has %d", path,
                      (long long)st.st_size, BM_CRYPTO_KEY_LEN);
    return BM_OK;
}

/* O_NONBLOCK: a FIFO at path opens at once (and is refused) instead of waiting
 * for a writer; it changes nothing for a regular file. */
#define KEY_OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)

int bm_crypto_key_load(const char *path, bool create, unsigned char key[BM_CRYPTO_KEY_LEN],
                       char *err, size_t errlen)
{
    int rc = BM_OK;
    int fd = open(path, KEY_OPEN_FLAGS);
    if (fd < 0 && errno == ENOENT && create) {
        rc = key_create(path, key, err, errlen);
        if (rc != BM_EEXIST) /* EEXIST: another process won the race, read its key */
            goto out;
        rc = BM_OK;
        fd = open(path, KEY_OPEN_FLAGS);
    }
    if (fd < 0) {
        if (errno == ENOENT)
            rc = bm_err(err, errlen, BM_ECRYPTO,
                        "key file %s does not exist (it is created on first login; restore it "
                        "from backup or log in again)",
                        path);
        else if (errno == ELOOP)
            rc = bm_err(err, errlen, BM_ECRYPTO, "key file %s is a symbolic link", path);
        else
            rc = bm_err(err, errlen, BM_EIO, "cannot open key file %s: %s", path, strerror(errno));
        goto out;
    }
    if ((rc = key_check(fd, path, err, errlen)) != BM_OK)
        goto out;
    if (read_full(fd, key, BM_CRYPTO_KEY_LEN) != 0) {
        OPENSSL_cleanse(key, BM_CRYPTO_KEY_LEN);
        rc = bm_err(err, errlen, BM_EIO, "cannot read key file %s", path);
        goto out;
    }
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

_Static_assert(BM_CRYPTO_NAME_MAX == BM_NAME_MAX, "an account name fits the associated data");

int bm_crypto_aad(bm_crypto_kind_t kind, const char *name, char out[BM_CRYPTO_AAD_MAX], char *err,
                  size_t errlen)
{
    const char *prefix = kind == BM_CRYPTO_ACCESS_TOKEN ? "access:" : "account:";
    size_t len = name != NULL ? strlen(name) : 0;
    out[0] = '\0';
    if (len == 0 || len > BM_CRYPTO_NAME_MAX)
        return bm_err(err, errlen, BM_EINVAL,
                      "account name of %zu characters cannot name a sealed token (1 to %d)", len,
                      BM_CRYPTO_NAME_MAX);
    memcpy(out, prefix, strlen(prefix));
    memcpy(out + strlen(prefix), name, len + 1);
    return BM_OK;
}

int bm_crypto_seal(const unsigned char key[BM_CRYPTO_KEY_LEN], const char *aad, const void *plain,
                   size_t len, unsigned char **out, size_t *out_len, char *err, size_t errlen)
{
    int rc = BM_OK;
    unsigned char *buf = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    int n = 0;
    *out = NULL;
    *out_len = 0;
    if (len > INT_MAX - BM_CRYPTO_OVERHEAD) {
        rc = bm_err(err, errlen, BM_ETOOBIG, "too much data to seal");
        goto out;
    }
    const unsigned char version = BM_CRYPTO_VERSION;
    size_t aad_len = aad != NULL ? strlen(aad) : 0;
    buf = bm_malloc(len + BM_CRYPTO_OVERHEAD);
    buf[0] = version;
    unsigned char *nonce = buf + 1, *ct = buf + 1 + BM_CRYPTO_NONCE_LEN;
    if (RAND_bytes(nonce, BM_CRYPTO_NONCE_LEN) != 1) {
        rc = bm_err(err, errlen, BM_ECRYPTO, "RAND_bytes: %s", ossl_error());
        goto out;
    }
    if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
        EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, BM_CRYPTO_NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, &version, 1) != 1 ||
        (aad_len > 0 &&
         EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)aad_len) != 1)) {
        rc = bm_err(err, errlen, BM_ECRYPTO, "encrypt setup: %s", ossl_error());
        goto out;
    }
    int total = 0;
    if (len > 0 && EVP_EncryptUpdate(ctx, ct, &n, plain, (int)len) != 1) {
        rc = bm_err(err, errlen, BM_ECRYPTO, "encrypt: %s", ossl_error());
        goto out;
    }
    total = len > 0 ? n : 0;
    if (EVP_EncryptFinal_ex(ctx, ct + total, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, BM_CRYPTO_TAG_LEN, ct + len) != 1) {
        rc = bm_err(err, errlen, BM_ECRYPTO, "encrypt final: %s", ossl_error());
        goto out;
    }
    *out = buf;
    *out_len = len + BM_CRYPTO_OVERHEAD;
    buf = NULL;
out:
    EVP_CIPHER_CTX_free(ctx);
    free(buf);
    return rc;
}

int bm_crypto_open(const unsigned char key[BM_CRYPTO_KEY_LEN], const char *aad, const void *sealed,
                   size_t len, unsigned char **out, size_t *out_len, char *err, size_t errlen)
{
    int rc = BM_OK;
    unsigned char *plain = NULL;
    size_t plain_len = 0;
    EVP_CIPHER_CTX *ctx = NULL;
    const unsigned char *in = sealed;
    int n = 0;
    *out = NULL;
    *out_len = 0;
    if (len < BM_CRYPTO_OVERHEAD || len > (size_t)INT_MAX) {
        rc = bm_err(err, errlen, BM_ECRYPTO, "sealed secret is corrupt (%zu bytes): log in again",
                    len);
        goto out;
    }
    if (in[0] != BM_CRYPTO_VERSION) {
        rc = bm_err(err, errlen, BM_ECRYPTO,
                    "sealed secret has unknown format version %u: log in again", in[0]);
        goto out;
    }
    plain_len = len - BM_CRYPTO_OVERHEAD;
    const unsigned char *nonce = in + 1, *ct = in + 1 + BM_CRYPTO_NONCE_LEN;
    unsigned char tag[BM_CRYPTO_TAG_LEN];
    memcpy(tag, ct + plain_len, BM_CRYPTO_TAG_LEN);
    size_t aad_len = aad != NULL ? strlen(aad) : 0;
    plain = bm_malloc(plain_len + 1);
    if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
        EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, BM_CRYPTO_NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, in, 1) != 1 ||
        (aad_len > 0 &&
         EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)aad_len) != 1)) {
        rc = bm_err(err, errlen, BM_ECRYPTO, "decrypt setup: %s", ossl_error());
        goto out;
    }
    int total = 0;
    if (plain_len > 0) {
        if (EVP_DecryptUpdate(ctx, plain, &n, ct, (int)plain_len) != 1) {
            rc = bm_err(err, errlen, BM_ECRYPTO, "decrypt: %s", ossl_error());
            goto out;
        }
        total = n;
    }
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, BM_CRYPTO_TAG_LEN, tag) != 1) {
        rc = bm_err(err, errlen, BM_ECRYPTO, "decrypt: %s", ossl_error());
        goto out;
    }
    if (EVP_DecryptFinal_ex(ctx, plain + total, &n) != 1) {
        ERR_clear_error();
        rc = bm_err(err, errlen, BM_ECRYPTO,
                    "cannot decrypt a stored secret: wrong key or corrupt data: log in again");
        goto out;
    }
    plain[plain_len] = '\0';
    *out = plain;
    *out_len = plain_len;
    plain = NULL;
out:
    EVP_CIPHER_CTX_free(ctx);
    if (plain != NULL)
        bm_crypto_free(plain, plain_len);
    return rc;
}

int bm_crypto_channel_token(const unsigned char key[BM_CRYPTO_KEY_LEN], const char *channel_id,
                            char out[BM_CRYPTO_CHANNEL_TOKEN_LEN + 1])
{
    static const char label[] = "busymirror channel token v1";
    unsigned char server[32], mac[32];
    unsigned int n = 0;
    int rc = BM_OK;
    out[0] = '\0';
    if (HMAC(EVP_sha256(), key, BM_CRYPTO_KEY_LEN, (const unsigned char *)label, sizeof(label) - 1,
             server, &n) == NULL ||
        n != sizeof(server) ||
        HMAC(EVP_sha256(), server, sizeof(server), (const unsigned char *)channel_id,
             strlen(channel_id), mac, &n) == NULL ||
        n != sizeof(mac)) {
        rc = BM_ECRYPTO;
        goto out;
    }
    bm_buf_t b;
    bm_buf_init(&b, BM_CRYPTO_CHANNEL_TOKEN_LEN);
    rc = bm_buf_b64url(&b, mac, sizeof(mac)); /* 32 bytes: 43 characters, no padding */
    if (rc == BM_OK)
        memcpy(out, b.data, b.len + 1);
    bm_crypto_wipe(b.data, b.len);
    bm_buf_dispose(&b);
out:
    bm_crypto_wipe(server, sizeof(server));
    bm_crypto_wipe(mac, sizeof(mac));
    return rc;
}

bool bm_crypto_channel_token_ok(const unsigned char key[BM_CRYPTO_KEY_LEN], const char *channel_id,
                                const char *token)
{
    char want[BM_CRYPTO_CHANNEL_TOKEN_LEN + 1];
    if (bm_crypto_channel_token(key, channel_id, want) != BM_OK)
        return false;
    size_t n = strlen(token);
    /* the length is not secret (always 43); the bytes are compared in full */
    bool ok = n == BM_CRYPTO_CHANNEL_TOKEN_LEN &&
              CRYPTO_memcmp(want, token, BM_CRYPTO_CHANNEL_TOKEN_LEN) == 0;
    bm_crypto_wipe(want, sizeof(want));
    return ok;
}
