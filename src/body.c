#include "body.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "plugin.h"

int sl_body_start(struct sl_body *b, uint64_t expect)
{
    sl_buf_clear(&b->buf);
    b->over = false;
    b->state = SL_BODY_BUFFERING;
    /* A declared length is allocated once; a chunked body grows by
     * doubling (sl_buf_reserve). */
    if (expect > 0 && sl_buf_reserve(&b->buf, (size_t)expect) < 0)
        return -1;
    return 0;
}

int sl_body_append(struct sl_body *b, const char *p, size_t n, size_t max)
{
    if (n > max - sl_buf_len(&b->buf)) {
        b->over = true;
        return 1;
    }
    return sl_buf_append(&b->buf, p, n) < 0 ? -1 : 0;
}

int sl_body_replace(struct sl_body *b, const char *p, size_t n)
{
    /* p may point into b itself (a plugin setting what it read). */
    if (b->buf.data != NULL && p >= b->buf.data && p < b->buf.data + b->buf.cap) {
        memmove(b->buf.data, p, n);
        b->buf.start = 0;
        b->buf.end = n;
        return 0;
    }
    struct sl_buf nb = { 0 };
    if (n > 0 && sl_buf_append(&nb, p, n) < 0)
        return -1;
    sl_buf_fini(&b->buf);
    b->buf = nb;
    return 0;
}

int sl_body_run_phase(struct sl_conn *c, struct sl_body *b, int phase)
{
    const struct sl_chain *ch = c->req.chain;
    int rc = SL_ACTION_CONTINUE;
    b->state = SL_BODY_OPEN;
    if (ch != NULL && ch->n[phase] > 0)
        rc = sl_chain_run(ch, (enum sl_phase)phase, c);
    b->state = SL_BODY_DONE;
    return rc;
}

void sl_body_run_reply(struct sl_conn *c, int *status, const char **body, size_t *len)
{
    struct sl_req *r = &c->req;
    struct sl_body *b = &r->resp_body;
    /* Once per request: a reply that replaces a response whose body phase
     * already ran (that phase failed: this is its 500) does not run it
     * again. */
    if (r->chain == NULL || !r->chain->needs_response_body || b->state == SL_BODY_OPEN ||
        b->state == SL_BODY_DONE)
        return;
    if (sl_body_replace(b, *body, *len) < 0)
        return;
    if (sl_body_run_phase(c, b, SL_PHASE_RESPONSE_BODY) == SL_ACTION_RESPOND) {
        memset(&r->resp_headers, 0, sizeof r->resp_headers);
        *status = r->status = r->local_status;
        *body = r->local_body != NULL ? r->local_body : "";
        *len = r->local_body_len;
        return;
    }
    *status = r->status;    /* the head is still held: set_status counts */
    *body = sl_body_data(b);
    *len = sl_body_len(b);
}

void sl_body_fini(struct sl_body *b)
{
    sl_buf_fini(&b->buf);
    memset(b, 0, sizeof *b);
}
