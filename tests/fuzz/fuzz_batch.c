/*
 * bm_batch_decode. Input: the response's Content-Type on the first line, then
 * the body. The batch had 1..8 requests (the first byte's low bits).
 */
#include "tests/fuzz/fuzz.h"

#include "core/batch.h"
#include "core/gcal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t n = 1 + (data[0] & 7);
    const uint8_t *nl = memchr(data + 1, '\n', size - 1);
    size_t ct_len = nl != NULL ? (size_t)(nl - data - 1) : size - 1;
    char *ct = fuzz_cstr(data + 1, ct_len);
    size_t off = 1 + ct_len + (nl != NULL);
    size_t body_len = size - off;
    /* the body exactly as long as said, so ASan catches reads past it */
    char *body = malloc(body_len ? body_len : 1);
    if (body == NULL)
        abort();
    if (body_len)
        memcpy(body, data + off, body_len);
    bm_gcal_req_t reqs[8];
    memset(reqs, 0, sizeof(reqs));
    for (size_t i = 0; i < n; i++) {
        reqs[i].method = i % 2 ? "DELETE" : "PATCH";
        reqs[i].path = "/calendars/primary/events/e1";
        reqs[i].body = i % 2 ? NULL : "{}";
    }
    char err[256];
    (void)bm_batch_decode(ct, body, body_len, reqs, n, err, sizeof(err));
    for (size_t i = 0; i < n; i++)
        if (reqs[i].response != NULL)
            (void)strlen(reqs[i].response);
    bm_gcal_reqs_dispose(reqs, n);
    free(body);
    free(ct);
    return 0;
}
