/*
 * core/batch.h: the multipart/mixed codec of Google's batch endpoint, used by
 * bm_gcal_batch(); pure functions, unit-tested on their own.
 *
 * The requests and their results are bm_gcal_req_t (core/gcal.h): the caller
 * owns the array; decoding fills each part's outputs, released with
 * bm_gcal_reqs_dispose(). Encoding appends to a caller-owned, bounded bm_buf_t.
 */
#ifndef BM_CORE_BATCH_H
#define BM_CORE_BATCH_H

#include "core/gcal.h"
#include "core/util.h"

#include <stddef.h>

/* The multipart/mixed body of a batch. api_path_prefix is the path of the API base
 * ("/calendar/v3"); each part has Content-ID <item-N> (N = index + 1). Appends to out. */
int bm_batch_encode(const bm_gcal_req_t *reqs, size_t n, const char *api_path_prefix,
                    const char *boundary, bm_buf_t *out);

/* Parses a multipart/mixed batch response (content_type carries the boundary) into
 * reqs[] (their outputs are cleared first, as bm_gcal_reqs_dispose does): parts are matched by
 * Content-ID response-item-N when present, else by position. BM_EINVAL on malformed input or when a
 * request got no part (the parts that did parse are filled). */
int bm_batch_decode(const char *content_type, const char *body, size_t len, bm_gcal_req_t *reqs,
                    size_t n, char *err, size_t errlen);

#endif
