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

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Which eventTypes make an event busy (bit set): [group G] event_types. */
enum {
    BM_ETYPE_DEFAULT = 1 << 0,
    BM_ETYPE_OUT_OF_OFFICE = 1 << 1,
    BM_ETYPE_FOCUS_TIME = 1 << 2,
    BM_ETYPE_FROM_GMAIL = 1 << 3,
    BM_ETYPE_WORKING_LOCATION = 1 << 4,
    BM_ETYPE_BIRTHDAY = 1 << 5, /* known, so never mistaken for a new type; never busy */
};
#define BM_ETYPE_BUSY_DEFAULT                                                                      \
    (BM_ETYPE_DEFAULT | BM_ETYPE_OUT_OF_OFFICE | BM_ETYPE_FOCUS_TIME | BM_ETYPE_FROM_GMAIL)
/* The bit of a Google eventType name (NULL: "default"), 0 for a name we do not
 * know (a type Google added after us). */
unsigned bm_config_event_type_bit(const char *name);

/* What a title regex may cost: its bounded repetitions ({m,n}) may expand it by
 * at most BM_REGEX_EXPANSION_MAX atoms (more is refused when the key is read),
 * and a title is matched on its first BM_REGEX_TITLE_MAX bytes (cut at a
 * character). glibc's matcher is not backtracking, but its time grows with the
 * expanded size times the text's length: within these bounds a match takes
 * well under a second (measured 0.09 s for the worst found, without ASan). */
#define BM_REGEX_EXPANSION_MAX 256
#define BM_REGEX_TITLE_MAX     1024

/* A POSIX extended regex, case-insensitive, compiled when the key is read. */
typedef struct bm_regex {
    char *text; /* NULL: unset */
    regex_t re; /* valid when text is set */
} bm_regex_t;

/*
 * [group G] working_hours: per weekday (0 = Sunday, as struct tm), up to
 * BM_WORK_MAX intervals [start, end) in minutes after local midnight,
 * 0 <= start < end <= 1440. Grammar (case-insensitive day names):
 *   spec   := clause (";" clause)*
 *   clause := days " " times
 *   days   := dayspec ("," dayspec)*      dayspec := DAY | DAY "-" DAY (wraps: Fri-Mon)
 *   times  := range ("," range)*          range   := HH:MM "-" HH:MM (end after start;
 *                                                    24:00 is midnight at the end)
 *   DAY    := Mon | Tue | Wed | Thu | Fri | Sat | Sun
 * e.g. "Mon-Fri 08:00-18:00", "Mon-Thu 09:00-12:00,13:00-17:00; Fri 09:00-13:00".
 * A night shift is two clauses ("Mon-Fri 22:00-24:00; Tue-Sat 00:00-06:00").
 */
#define BM_WORK_MAX 8
typedef struct bm_work_hours {
    char *text; /* NULL: unset (every hour counts) */
    int n[7];
    struct {
        short start, end;
    } iv[7][BM_WORK_MAX];
} bm_work_hours_t;

/* The mirror rules of one group ([group G]; the defaults for a group without a
 * section). Owned by bm_config_t. */
typedef struct bm_rules {
    char *group;         /* the section's group name; NULL for the defaults */
    int line;            /* line of its section header (0: none) */
    unsigned keys_set;   /* bit i: key i of bm_group_keys was given (duplicates refused) */
    char *block_summary; /* NULL: [sync] block_summary; "{calendar}": the source's label */
    bool copy_title;
    bm_regex_t exclude_title;
    bm_regex_t include_title;
    unsigned event_types; /* BM_ETYPE_* mask */
    bool all_day;
    bool tentative;
    bool unanswered;
    bm_work_hours_t working_hours;
    char *time_zone;   /* NULL: the source calendar's zone */
    int buffer_before; /* minutes */
    int buffer_after;  /* minutes */
    bool skip_shared_events;
} bm_rules_t;

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
        int stall_timeout; /* s a role may go without coming round: stuck */
    } serve;
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
        int poll_interval;
        int full_resync_hours; /* a full listing at least this often */
        int deadline;          /* seconds a sync may run; 0: no limit */
    } sync;
    struct {
        char *file;
        int level;
        int retention_days;
    } log;
    char *source;             /* the file it was read from, or NULL for defaults only */
    bm_rules_t rules_default; /* a group without a section */
    bm_rules_t *groups;       /* [group G] sections, in file order */
    size_t n_groups;
} bm_config_t;

typedef enum {
    BM_CFG_STRING,
    BM_CFG_PATH,   /* relative paths resolve against the config file's folder */
    BM_CFG_URL,    /* http:// or https:// */
    BM_CFG_INT,    /* bounded by min..max */
    BM_CFG_BOOL,   /* true/false/yes/no/on/off/1/0 */
    BM_CFG_LEVEL,  /* a log level name */
    BM_CFG_LISTEN, /* host:port */
    /* [group G] types (offsets into bm_rules_t) */
    BM_CFG_REGEX,  /* bm_regex_t: POSIX ERE, case-insensitive */
    BM_CFG_ETYPES, /* unsigned mask: comma-separated eventType names, never birthday */
    BM_CFG_HOURS,  /* bm_work_hours_t */
    BM_CFG_ZONE,   /* an IANA time zone name libical knows */
} bm_cfg_type_t;

typedef struct bm_config_key {
    const char *section;
    const char *name;
    bm_cfg_type_t type;
    const char *def; /* default as text; NULL means unset */
    size_t offset;   /* into bm_config_t (bm_rules_t for bm_group_keys) */
    long min, max;   /* for BM_CFG_INT */
    bool secret;     /* masked by `config check` */
    const char *help;
} bm_config_key_t;

/* Static, read-only: never freed. */
extern const bm_config_key_t bm_config_keys[];
extern const size_t bm_config_n_keys;
/* The keys of a [group G] section (their section field is "group G"). */
extern const bm_config_key_t bm_group_keys[];
extern const size_t bm_group_n_keys;

/* Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
bool bm_config_valid_utf8(const char *s);
/* Whether s (NULL: "") matches r (its text must be set), read as UTF-8. */
bool bm_regex_match(const bm_regex_t *r, const char *s);
/* The rules of group (its section, or cfg->rules_default); never NULL. */
const bm_rules_t *bm_config_rules(const bm_config_t *cfg, const char *group);
/* The event types of mask as "default,outOfOffice,..." into buf. */
void bm_config_format_event_types(unsigned mask, char *buf, size_t len);
/* Prints rules as the keys of a [group NAME] section (effective values; an
 * unset block_summary prints [sync] block_summary's). */
void bm_config_print_rules(const bm_config_t *cfg, const bm_rules_t *r, FILE *out);

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
 * text is copied (parsed into cfg); section, name and value stay the caller's.
 * A section "group NAME" is a group's rules (made on first use); a key given
 * twice there is an error. */
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
