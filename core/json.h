/*
 * core/json.h: the one JSON parser for what arrives from the network (API pages,
 * single answers, batch parts, token answers, error bodies): yajl's parser,
 * bounded, building a yajl tree.
 *
 * yajl itself has no depth limit, and freeing a tree recurses, so a server that
 * answers a few million nested brackets would crash the process on the stack.
 * bm_json_parse() refuses, while parsing, a document nested deeper than
 * BM_JSON_MAX_DEPTH, longer than BM_JSON_MAX_LEN bytes or holding more than
 * BM_JSON_MAX_VALUES values (each costs about 60 bytes of tree), so the tree it
 * returns is bounded in depth and size. Strict JSON: no comments, one value, no
 * trailing garbage, UTF-8 checked.
 *
 * The tree is an ordinary yajl tree (yajl_tree_get and the YAJL_* macros work on
 * it); a string holding "\u0000" ends there. yajl's scratch buffers (the decoded
 * strings, its stack) are wiped before they are freed, so a token answer leaves no
 * copy behind; bm_json_wipe() wipes the tree's own strings.
 *
 * Ownership: the caller frees the tree with bm_json_free().
 */
#ifndef BM_CORE_JSON_H
#define BM_CORE_JSON_H

#include <stddef.h>
#include <yajl/yajl_tree.h>

#define BM_JSON_MAX_DEPTH  64          /* Google's documents nest under 10 levels */
#define BM_JSON_MAX_LEN    (64u << 20) /* = BM_GCAL_MAX_RESPONSE */
#define BM_JSON_MAX_VALUES (8u << 20)  /* a legitimate value takes 10 bytes or more */

/*
 * Parses text[0..len) (it need not be NUL-terminated; a NUL byte in it is an
 * error, as JSON says). Returns the tree, or NULL with a one-line message in err
 * ("JSON nested deeper than 64 levels", "invalid JSON at byte 12: ..."); the
 * message never quotes the text. err may be NULL.
 */
yajl_val bm_json_parse(const char *text, size_t len, char *err, size_t errlen);

/* Frees a tree from bm_json_parse(). NULL is fine. */
void bm_json_free(yajl_val v);

/* Zeroes every string, key and number text of the tree (before bm_json_free, when
 * it held secrets). NULL is fine. */
void bm_json_wipe(yajl_val v);

#endif
