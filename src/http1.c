#include "http1.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Offsets of one header inside reader->raw, kept as offsets because raw may
 * move while the head is still arriving. */
struct sl_hoff {
    uint32_t name, name_len, value, value_len;
};

static struct sl_reader *reader_of(llhttp_t *p)
{
    return p->data;
}

static int fail(struct sl_reader *r, int status, const char *reason)
{
    if (r->error_status == 0) {
        r->error_status = status;
        r->error_reason = reason;
    }
    return -1;
}

static int on_message_begin(llhttp_t *p)
{
    struct sl_reader *r = reader_of(p);
    sl_buf_clear(&r->raw);
    r->nh = 0;
    r->line_len = 0;
    r->header_bytes = 0;
    r->in_head = true;
    r->error_status = 0;
    r->error_reason = NULL;
    memset(&r->head, 0, sizeof r->head);
    return 0;
}

static int append_raw(struct sl_reader *r, const char *at, size_t n)
{
    if (sl_buf_append(&r->raw, at, n) < 0)
        return fail(r, 503, "out of memory");
    return 0;
}

static int on_target(llhttp_t *p, const char *at, size_t n)
{
    struct sl_reader *r = reader_of(p);
    r->line_len += n;
    if (r->line_len > r->limits.max_line)
        return fail(r, r->is_request ? 414 : 502, "request line too long");
    return append_raw(r, at, n);
}

static int on_target_complete(llhttp_t *p)
{
    struct sl_reader *r = reader_of(p);
    r->head.target_len = r->raw.end;
    return append_raw(r, "", 1);
}

static int on_field(llhttp_t *p, const char *at, size_t n)
{
    struct sl_reader *r = reader_of(p);
    if (r->last != 1) {
        if (r->nh >= r->limits.max_headers)
            return fail(r, r->is_request ? 431 : 502, "too many header fields");
        if (r->nh == r->hcap) {
            size_t cap = r->hcap ? r->hcap * 2 : 32;
            struct sl_hoff *h = realloc(r->hoff, cap * sizeof *h);
            if (h == NULL)
                return fail(r, 503, "out of memory");
            r->hoff = h;
            struct sl_header *hd = realloc(r->headers, cap * sizeof *hd);
            if (hd == NULL)
                return fail(r, 503, "out of memory");
            r->headers = hd;
            r->hcap = cap;
        }
        r->hoff[r->nh].name = (uint32_t)r->raw.end;
        r->last = 1;
    }
    r->header_bytes += n;
    if (r->header_bytes > r->limits.max_header_size)
        return fail(r, r->is_request ? 431 : 502, "header fields too large");
    return append_raw(r, at, n);
}

static int on_field_complete(llhttp_t *p)
{
    struct sl_reader *r = reader_of(p);
    struct sl_hoff *h = &r->hoff[r->nh];
    h->name_len = (uint32_t)r->raw.end - h->name;
    if (append_raw(r, "", 1) < 0)
        return -1;
    h->value = (uint32_t)r->raw.end;
    r->last = 2;
    r->value_spans = 0;
    return 0;
}

static int on_value(llhttp_t *p, const char *at, size_t n)
{
    struct sl_reader *r = reader_of(p);
    /* llhttp joins an obs-fold continuation line into the value it
     * reports in two spans. Two spans of one value are legitimate only when
     * the first ended with a read and the second starts the next one; any
     * other split is a fold, which RFC 9112 §5.2 lets us reject. */
    if (r->value_spans > 0 && !(r->span_end == r->span_feed_end && at == r->feed_start))
        return fail(r, r->is_request ? 400 : 502, "obsolete line folding");
    r->value_spans++;
    r->span_end = at + n;
    r->span_feed_end = r->feed_end;
    r->header_bytes += n;
    if (r->header_bytes > r->limits.max_header_size)
        return fail(r, r->is_request ? 431 : 502, "header fields too large");
    return append_raw(r, at, n);
}

static int on_value_complete(llhttp_t *p)
{
    struct sl_reader *r = reader_of(p);
    struct sl_hoff *h = &r->hoff[r->nh];
    size_t end = r->raw.end;
    /* Trailing OWS is not part of the value (RFC 9110 §5.5). */
    while (end > h->value && (r->raw.data[end - 1] == ' ' || r->raw.data[end - 1] == '\t'))
        end--;
    r->raw.end = end;
    h->value_len = (uint32_t)(end - h->value);
    r->header_bytes += 4;   /* ": " and CRLF count toward the limit too */
    r->nh++;
    r->last = 0;
    return append_raw(r, "", 1);
}

const struct sl_header *sl_head_find(const struct sl_head *h, const char *name,
                                     size_t name_len)
{
    for (size_t i = 0; i < h->nheaders; i++)
        if (sl_name_is(&h->headers[i], name, name_len))
            return &h->headers[i];
    return NULL;
}

bool sl_value_has_token(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < len && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
            return true;
    }
    return false;
}

/* RFC 9112 §6.1 and §3.2: the framing and Host rules llhttp leaves to us.
 * Only a lone "chunked" is accepted as Transfer-Encoding: other codings
 * would have to be forwarded undecoded, and an HTTP/1.0 message with
 * Transfer-Encoding has faulty framing. */
static int check_request_head(struct sl_reader *r)
{
    struct sl_head *h = &r->head;
    size_t hosts = 0, tes = 0;
    const struct sl_header *te = NULL;
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct sl_header *hd = &h->headers[i];
        if (sl_name_is(hd, "host", 4))
            hosts++;
        else if (sl_name_is(hd, "transfer-encoding", 17)) {
            tes++;
            te = hd;
        }
    }
    if (h->http_major != 1)
        return fail(r, h->http_major == 0 ? 400 : 505, "unsupported HTTP version");
    if (hosts > 1)
        return fail(r, 400, "more than one Host header");
    if (hosts == 0 && h->http_minor >= 1)
        return fail(r, 400, "missing Host header");
    if (tes > 0) {
        if (h->http_major == 1 && h->http_minor == 0)
            return fail(r, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if (tes > 1 || te->value_len != 7 || strncasecmp(te->value, "chunked", 7) != 0)
            return fail(r, 400, "unsupported Transfer-Encoding");
    }
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct sl_reader *r = reader_of(p);
    struct sl_head *h = &r->head;
    const char *base = r->raw.data;
    for (size_t i = 0; i < r->nh; i++) {
        r->headers[i] = (struct sl_header){
            .name = base + r->hoff[i].name,
            .name_len = r->hoff[i].name_len,
            .value = base + r->hoff[i].value,
            .value_len = r->hoff[i].value_len,
        };
    }
    h->headers = r->headers;
    h->nheaders = r->nh;
    h->headers_cap = r->hcap;
    h->target = h->target_len ? base : "";
    if (r->is_request) {
        h->method = llhttp_get_method(p);
    } else {
        h->status = llhttp_get_status_code(p);
        /* The reason phrase was captured as the target; a status line
         * without one leaves nothing there. */
    }
    h->http_major = llhttp_get_http_major(p);
    h->http_minor = llhttp_get_http_minor(p);
    h->chunked = (p->flags & F_CHUNKED) != 0;
    h->has_length = (p->flags & F_CONTENT_LENGTH) != 0;
    h->content_length = h->has_length ? p->content_length : 0;
    h->keep_alive = llhttp_should_keep_alive(p) != 0;
    h->upgrade = p->upgrade != 0;
    r->in_head = false;
    if (r->is_request && check_request_head(r) < 0)
        return -1;
    int rc = r->ops->on_head(r->owner);
    if (rc < 0)
        return fail(r, r->is_request ? 400 : 502, "rejected head");
    return rc;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct sl_reader *r = reader_of(p);
    if (r->ops->on_body(r->owner, at, n) < 0)
        return fail(r, r->is_request ? 400 : 502, "body rejected");
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct sl_reader *r = reader_of(p);
    r->in_msg = false;
    r->scan_head = true;
    r->scan_lines = 0;
    int rc = r->ops->on_done(r->owner);
    if (rc < 0)
        return fail(r, r->is_request ? 400 : 502, "message rejected");
    return rc == 1 ? HPE_PAUSED : 0;
}

static int on_begin(llhttp_t *p)
{
    reader_of(p)->in_msg = true;
    return on_message_begin(p);
}

static const llhttp_settings_t request_settings = {
    .on_message_begin = on_begin,
    .on_url = on_target,
    .on_url_complete = on_target_complete,
    .on_header_field = on_field,
    .on_header_field_complete = on_field_complete,
    .on_header_value = on_value,
    .on_header_value_complete = on_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static const llhttp_settings_t response_settings = {
    .on_message_begin = on_begin,
    .on_status = on_target,
    .on_status_complete = on_target_complete,
    .on_header_field = on_field,
    .on_header_field_complete = on_field_complete,
    .on_header_value = on_value,
    .on_header_value_complete = on_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void sl_reader_init(struct sl_reader *r, bool is_request,
                    const struct sl_reader_ops *ops, void *owner,
                    const struct sl_reader_limits *limits)
{
    memset(r, 0, sizeof *r);
    r->is_request = is_request;
    r->ops = ops;
    r->owner = owner;
    r->limits = *limits;
    sl_reader_reset(r);
}

void sl_reader_reset(struct sl_reader *r)
{
    llhttp_init(&r->parser, r->is_request ? HTTP_REQUEST : HTTP_RESPONSE,
                r->is_request ? &request_settings : &response_settings);
    r->parser.data = r;
    r->in_head = false;
    r->in_msg = false;
    r->error_status = 0;
    r->error_reason = NULL;
    r->scan_head = true;
    r->scan_lines = 0;
    r->tail[0] = r->tail[1] = 0;
}

void sl_reader_fini(struct sl_reader *r)
{
    sl_buf_fini(&r->raw);
    free(r->hoff);
    free(r->headers);
    r->hoff = NULL;
    r->headers = NULL;
    r->hcap = r->nh = 0;
}

/* Whatever llhttp refuses is a malformed request (400) or, from an origin,
 * a bad gateway (502). llhttp cannot tell an unknown method from garbage,
 * so an unknown method gets 400 as well. */
static int error_status_for(const struct sl_reader *r)
{
    return r->is_request ? 400 : 502;
}

static int feed(struct sl_reader *r, const char *p, size_t n, size_t *used);

/* Strict llhttp refuses a bare LF inside the field lines but not after the
 * start line nor as the empty line ending the head (RFC 9112 §2.2 lets a
 * recipient refuse both). So the head's line ends are checked here, before
 * llhttp sees them: every LF must follow a CR, up to the empty line. */
static bool head_has_bare_lf(struct sl_reader *r, const char *p, size_t n)
{
    const char *q = p, *end = p + n;
    while (r->scan_head && (q = memchr(q, '\n', (size_t)(end - q))) != NULL) {
        char prev = q > p ? q[-1] : r->tail[1];
        char prev2 = q - 1 > p ? q[-2] : (q > p ? r->tail[1] : r->tail[0]);
        if (prev != '\r')
            return true;
        if (prev2 == '\n' && r->scan_lines > 0)
            r->scan_head = false;   /* the empty line: the body follows */
        r->scan_lines++;
        q++;
    }
    return false;
}

int sl_reader_feed(struct sl_reader *r, const char *p, size_t n, size_t *used)
{
    r->feed_start = p;
    r->feed_end = p + n;
    if (r->is_request && head_has_bare_lf(r, p, n)) {
        *used = 0;
        fail(r, 400, "bare LF line ending");
        return -1;
    }
    int rc = feed(r, p, n, used);
    if (n >= 2) {
        r->tail[0] = p[n - 2];
        r->tail[1] = p[n - 1];
    } else if (n == 1) {
        r->tail[0] = r->tail[1];
        r->tail[1] = p[0];
    }
    return rc;
}

static int feed(struct sl_reader *r, const char *p, size_t n, size_t *used)
{
    llhttp_errno_t err = llhttp_execute(&r->parser, p, n);
    switch (err) {
    case HPE_OK:
        *used = n;
        return 0;
    case HPE_PAUSED:
        *used = (size_t)(llhttp_get_error_pos(&r->parser) - p);
        return 1;
    case HPE_PAUSED_UPGRADE:
        *used = (size_t)(llhttp_get_error_pos(&r->parser) - p);
        return 2;
    default:
        *used = 0;
        if (r->error_status == 0) {
            r->error_status = error_status_for(r);
            r->error_reason = llhttp_get_error_reason(&r->parser);
        }
        return -1;
    }
}

void sl_reader_resume(struct sl_reader *r)
{
    llhttp_resume(&r->parser);
}

void sl_reader_resume_after_upgrade(struct sl_reader *r)
{
    llhttp_resume_after_upgrade(&r->parser);
}

int sl_reader_finish(struct sl_reader *r)
{
    if (!r->in_msg)
        return 0;
    llhttp_errno_t err = llhttp_finish(&r->parser);
    /* on_done may pause at the end of the message it just completed. */
    return (err == HPE_OK || err == HPE_PAUSED) && !r->in_msg ? 0 : -1;
}

bool sl_reader_is_idle(const struct sl_reader *r)
{
    return !r->in_msg;
}

bool sl_reader_needs_eof(const struct sl_reader *r)
{
    return llhttp_message_needs_eof(&r->parser) != 0;
}
