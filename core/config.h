/*
 * core/config.h: busymirror's configuration, read from an INI file (libinih).
 *
 * One declarative table (bm_config_keys) lists every key with its type,
 * default, bounds and help text; parsing, validation, `config check` and the
 * documentation all come from it. Strings in bm_config_t are owned by the
 * struct and released by bm_config_dispose().
 */
#ifndef BM_CORE_CONFIG_H
#define BM_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct bm_config {
    struct {
        char *path;
        char *key_file;
    } store;
    struct {
        char *client_id;
        char *client_secret;
        char *api_base_url;
        char *batch_url;
        char *token_url;
        char *auth_url;
        int user_quota;
        int request_timeout; /* seconds */
    } google;
    struct {
        char *listen;
        char *tls_cert;
        char *tls_key;
        char *public_url;
        int threads;
        int commit_timeout_ms;
    } gateway;
    struct {
        char *listen;
        bool allow_remote;
    } admin;
    struct {
        int workers;
        int batch_size;
        int debounce_ms;
        int max_delay_ms;
    } engine;
    struct {
        int channel_ttl;
        int renew_before; /* s; 0: a fifth of the granted life (at most a day) */
        int seam_grace;   /* s a stopped channel's notifications still sync */
        int watch_retry;  /* s before a refused watch is retried (doubling, max 1 h) */
    } renewer;
    struct {
        int past_days;
        int future_days;
        char *block_summary;
        bool respect_deleted_blocks;
        bool skip_shared_events; /* temporary home: becomes [group G] skip_shared_events */
        int poll_interval;
        int full_resync_hours; /* a full listing at least this often */
        int deadline;          /* seconds a sync may run; 0: no limit */
    } sync;
    struct {
        char *file;
        int level;
        int retention_days;
    } log;
    char *source; /* the file it was read from, or NULL for defaults only */
} bm_config_t;

typedef enum {
    BM_CFG_STRING,
    BM_CFG_PATH,   /* relative paths resolve against the config file's folder */
    BM_CFG_URL,    /* http:// or https:// */
    BM_CFG_INT,    /* bounded by min..max */
    BM_CFG_BOOL,   /* true/false/yes/no/on/off/1/0 */
    BM_CFG_LEVEL,  /* a log level name */
    BM_CFG_LISTEN, /* host:port */
} bm_cfg_type_t;

typedef struct bm_config_key {
    const char *section;
    const char *name;
    bm_cfg_type_t type;
    const char *def; /* default as text; NULL means unset */
    size_t offset;   /* into bm_config_t */
    long min, max;   /* for BM_CFG_INT */
    bool secret;     /* masked by `config check` */
    const char *help;
} bm_config_key_t;

/* Static, read-only: never freed. */
extern const bm_config_key_t bm_config_keys[];
extern const size_t bm_config_n_keys;

/* Fills cfg (the caller's struct) with every default; release with bm_config_dispose. */
void bm_config_init(bm_config_t *cfg);
/* Frees every string of cfg (values and source); cfg itself stays the caller's. */
void bm_config_dispose(bm_config_t *cfg);

/*
 * Reads path over the defaults already in cfg. On error returns BM_EINVAL (bad
 * key or value: err says "file:line: [section] key: problem") or BM_EIO
 * (unreadable file), and cfg is left with the defaults only. path is copied
 * into cfg->source.
 */
int bm_config_load(bm_config_t *cfg, const char *path, char *err, size_t errlen);

/* Sets one key from text, as if read from a file (used by tests and flags). The
 * text is copied (parsed into cfg); section, name and value stay the caller's. */
int bm_config_set(bm_config_t *cfg, const char *section, const char *name, const char *value,
                  char *err, size_t errlen);

/* Requests per batch call: [engine] batch_size, capped by the quota's burst (a
 * sixth of [google] user_quota, at least 1) so one batch never exceeds a minute. */
int bm_config_batch_size(const bm_config_t *cfg);
/* BM_EINVAL, err naming the key and folder, when the folder of [store] path or
 * key_file does not exist. */
int bm_config_check_paths(const bm_config_t *cfg, char *err, size_t errlen);

/* Prints the effective configuration as INI, secrets masked. */
void bm_config_print(const bm_config_t *cfg, FILE *out);
/* Prints the table of keys with defaults and help (for --help and README). */
void bm_config_print_keys(FILE *out);

#endif
