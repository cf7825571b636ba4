/*
 * The notification endpoint's header checks (read_note, header_bytes in
 * gateway/routes.c) on a request built from the input: one "name: value" a
 * line, names lowercased as h2o's parser leaves them. The functions are static,
 * so the module is compiled into the harness (its object is then not taken from
 * the library); gateway/routes.c is not changed.
 */
#include "gateway/routes.c"

#include "tests/fuzz/fuzz.h"

#include <ctype.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    h2o_mem_pool_t pool;
    h2o_req_t req;
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&pool);
    char *copy = h2o_mem_alloc_pool(&pool, size + 1);
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *p = copy, *end = copy + size;
    while (p < end && req.headers.size < 64) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl != NULL ? nl : end;
        const char *colon = memchr(p, ':', (size_t)(e - p));
        if (colon != NULL && colon > p) {
            size_t nlen = (size_t)(colon - p);
            char *name = h2o_mem_alloc_pool(&pool, nlen);
            for (size_t i = 0; i < nlen; i++)
                name[i] = (char)tolower((unsigned char)p[i]);
            const char *v = colon + 1;
            while (v < e && *v == ' ')
                v++;
            size_t vlen = (size_t)(e - v);
            /* the value exactly as long as said, so ASan catches reads past it */
            char *value = h2o_mem_alloc_pool(&pool, vlen ? vlen : 1);
            memcpy(value, v, vlen);
            h2o_add_header_by_str(&pool, &req.headers, name, nlen, 1, NULL, value, vlen);
        }
        p = e + 1;
    }
    bm_gateway_note_t note;
    char token[BM_GATEWAY_TOKEN_MAX + 1];
    memset(&note, 0, sizeof(note));
    (void)header_bytes(&req);
    if (read_note(&req, &note, token, sizeof(token)) == BM__GW_OK) {
        if (strlen(note.channel_id) >= sizeof(note.channel_id) ||
            strlen(note.resource_id) >= sizeof(note.resource_id) || note.message_number < 0)
            abort();
    }
    h2o_mem_clear_pool(&pool);
    return 0;
}
