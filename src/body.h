/* Bodies buffered whole for the plugins' body phases. A body is buffered
 * only when a plugin of the request's chain declared that it needs it
 * (chain->needs_request_body / needs_response_body), and only up to
 * limits.max_body_buffer; every other body streams and never comes here.
 * The bytes live in a per-request heap buffer, freed when the request ends
 * (sl_body_fini from the connection's end-of-request path). */
#ifndef SL_BODY_H
#define SL_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct sl_conn;

/* Where a body is in its life; plugins may read it from OPEN on and
 * replace it only while OPEN (sl_api_body_get/set). */
enum sl_body_state {
    SL_BODY_NONE = 0,       /* not buffered (no plugin needs it, or not yet) */
    SL_BODY_BUFFERING,      /* bytes are being collected */
    SL_BODY_OPEN,           /* its body phase is running */
    SL_BODY_DONE,           /* its body phase ran; read-only from now on */
};

/* One buffered body (request or response side), embedded in the request. */
struct sl_body {
    struct sl_buf buf;      /* owned; free with sl_body_fini */
    uint8_t state;          /* enum sl_body_state */
    bool over;              /* went over limits.max_body_buffer */
};

/* The buffered bytes (borrowed: valid until the body changes or the
 * request ends) and their number. */
static inline const char *sl_body_data(const struct sl_body *b)
{
    return b->buf.data != NULL ? sl_buf_head(&b->buf) : "";
}

static inline size_t sl_body_len(const struct sl_body *b)
{
    return sl_buf_len(&b->buf);
}

/* Starts buffering: the body becomes SL_BODY_BUFFERING, with room reserved
 * for expect bytes when the length is known (0 otherwise). Returns 0, or -1
 * on OOM. */
int sl_body_start(struct sl_body *b, uint64_t expect);

/* Appends n bytes while buffering. Returns 0; 1 when the body would grow
 * past max bytes (nothing is appended, b->over is set); -1 on OOM. */
int sl_body_append(struct sl_body *b, const char *p, size_t n, size_t max);

/* Replaces the whole body with n bytes (copied; not bounded by
 * max_body_buffer: a plugin chooses what it sends). Returns 0, or -1 on
 * OOM (the body is then unchanged). */
int sl_body_replace(struct sl_body *b, const char *p, size_t n);

/* Runs phase (SL_PHASE_REQUEST_BODY or SL_PHASE_RESPONSE_BODY) of the
 * request's chain on c with b open to plugins, then marks b done whatever
 * happened. Returns the chain's action (sl_chain_run): SL_ACTION_RESPOND
 * when a plugin replied or failed with on_error: fail (then
 * c->req.local_status is set). A chain without hooks in phase continues. */
int sl_body_run_phase(struct sl_conn *c, struct sl_body *b, int phase);

/* Runs the response_body phase on a local reply of the proxy or a plugin
 * (as Kong runs body_filter on its own exits), when the request's chain
 * needs response bodies and that phase did not already run for this
 * request. *body and *len are the reply's body on entry and the body to
 * send on return (borrowed from the request); *status may become 500 when
 * a plugin fails with on_error: fail (its fields are then dropped). Does
 * nothing when out of memory (the reply goes out as it was). */
void sl_body_run_reply(struct sl_conn *c, int *status, const char **body, size_t *len);

/* Frees the buffer and forgets the body (state SL_BODY_NONE). Idempotent. */
void sl_body_fini(struct sl_body *b);

#endif
