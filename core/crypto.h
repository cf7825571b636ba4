/*
 * core/crypto.h: secrets at rest (refresh tokens) sealed with AES-256-GCM.
 *
 * The 32-byte key lives in a key file (raw bytes, mode 0600). A sealed blob is
 *   1 version byte (BM_CRYPTO_VERSION) | 12-byte random nonce | ciphertext | 16-byte tag
 * and the additional authenticated data is the version byte followed by the
 * caller's aad string (e.g. "account:alice@example.com"), so a blob moved to
 * another row or account fails to open.
 */
#ifndef BM_CORE_CRYPTO_H
#define BM_CORE_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#define BM_CRYPTO_KEY_LEN   32
#define BM_CRYPTO_VERSION   1
#define BM_CRYPTO_NONCE_LEN 12
#define BM_CRYPTO_TAG_LEN   16
#define BM_CRYPTO_OVERHEAD  (1 + BM_CRYPTO_NONCE_LEN + BM_CRYPTO_TAG_LEN)

/*
 * Reads the key file at path into key. When it is absent and create is true, a
 * new random key is written to a temporary file of the same directory (0600),
 * synced, and linked to path (never replacing a key that is there; a crash
 * leaves no partial key at path); the directory is synced. Refuses (BM_ECRYPTO,
 * one line naming path in err) what is not a regular file (a FIFO is refused
 * at once, not waited on), a symbolic link, a file of another user, one that
 * group or others can read or write, an empty one, or one not exactly 32 bytes.
 * A missing file without create is BM_ECRYPTO too; other I/O failures are
 * BM_EIO. The caller wipes key with bm_crypto_wipe() when done.
 */
int bm_crypto_key_load(const char *path, bool create, unsigned char key[BM_CRYPTO_KEY_LEN],
                       char *err, size_t errlen);

/*
 * The associated data of a sealed secret names what it is and whose, so a blob
 * moved to another account (or from the access to the refresh token) fails to
 * open: "account:NAME" for a refresh token, "access:NAME" for an access token,
 * the text every sealed row has used. Written whole into out, never cut:
 * BM_EINVAL (err) when name is empty or longer than BM_CRYPTO_NAME_MAX (the
 * bound of account names), so two names can never share their associated data.
 * Every site that seals or opens a token builds it here.
 */
typedef enum { BM_CRYPTO_REFRESH_TOKEN, BM_CRYPTO_ACCESS_TOKEN } bm_crypto_kind_t;
#define BM_CRYPTO_NAME_MAX 64 /* BM_NAME_MAX */
#define BM_CRYPTO_AAD_MAX  (sizeof("account:") + BM_CRYPTO_NAME_MAX)
int bm_crypto_aad(bm_crypto_kind_t kind, const char *name, char out[BM_CRYPTO_AAD_MAX], char *err,
                  size_t errlen);

/* Encrypts len bytes of plain (aad may be NULL = ""). *out (len + BM_CRYPTO_OVERHEAD
 * bytes, caller frees with free()) gets the sealed blob. */
int bm_crypto_seal(const unsigned char key[BM_CRYPTO_KEY_LEN], const char *aad, const void *plain,
                   size_t len, unsigned char **out, size_t *out_len, char *err, size_t errlen);

/* Decrypts a sealed blob. *out (caller releases with bm_crypto_free(*out, *out_len))
 * holds the plaintext plus a terminating NUL not counted in *out_len, so text comes
 * back as a C string. BM_ECRYPTO when the key is wrong, the aad differs or the data
 * is corrupt; nothing is returned then. */
int bm_crypto_open(const unsigned char key[BM_CRYPTO_KEY_LEN], const char *aad, const void *sealed,
                   size_t len, unsigned char **out, size_t *out_len, char *err, size_t errlen);

/*
 * The secret token of watch channel channel_id: base64url (no padding) of
 * HMAC-SHA256(server key, channel_id), where the server key is
 * HMAC-SHA256(key, "busymirror channel token v1"), so the key file's key is
 * never used directly and a notification can be authenticated with one hash,
 * even for a channel the database has forgotten. out holds at least
 * BM_CRYPTO_CHANNEL_TOKEN_LEN + 1 bytes. 0, or BM_ECRYPTO when OpenSSL fails.
 */
#define BM_CRYPTO_CHANNEL_TOKEN_LEN 43
int bm_crypto_channel_token(const unsigned char key[BM_CRYPTO_KEY_LEN], const char *channel_id,
                            char out[BM_CRYPTO_CHANNEL_TOKEN_LEN + 1]);
/* Whether the NUL-terminated token equals channel_id's token, compared in
 * constant time (no early exit on the first differing byte). */
bool bm_crypto_channel_token_ok(const unsigned char key[BM_CRYPTO_KEY_LEN], const char *channel_id,
                                const char *token);

/* Wipes (OPENSSL_cleanse) and frees plaintext from bm_crypto_open; NULL is fine. */
void bm_crypto_free(void *p, size_t len);
/* Wipes len bytes (OPENSSL_cleanse), e.g. a key on the stack. */
void bm_crypto_wipe(void *p, size_t len);

#endif
