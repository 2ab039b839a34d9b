/* HTTP/1.x message reader: llhttp glue shared by the client side (requests)
 * and the upstream side (responses). It captures the head into its own
 * buffer, enforces the size limits while bytes arrive, adds the framing
 * checks llhttp leaves to us (RFC 9112 §6) and streams body bytes to its
 * owner. */
#ifndef SL_HTTP1_H
#define SL_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <llhttp.h>

#include "buf.h"

/* One header field; both strings are NUL-terminated and borrowed from the
 * reader (valid until the reader starts the next message). */
struct sl_header {
    const char *name;
    const char *value;
    uint32_t name_len;
    uint32_t value_len;
};

/* A parsed head. Strings are borrowed from the reader, as above. */
struct sl_head {
    int method;                 /* llhttp_method_t; requests only */
    int status;                 /* responses only */
    uint8_t http_major;
    uint8_t http_minor;
    const char *target;         /* request target, or the reason phrase */
    size_t target_len;
    struct sl_header *headers;
    size_t nheaders;
    size_t headers_cap;         /* slots at headers; those past nheaders are the
                                   reader's spare ones, free until the next head */
    bool chunked;               /* Transfer-Encoding: chunked */
    bool has_length;            /* Content-Length present */
    uint64_t content_length;
    bool keep_alive;            /* llhttp_should_keep_alive() at head time */
    bool upgrade;               /* Upgrade handshake (or CONNECT) */
};

/* What the reader reports to its owner. Each callback returns 0 to go on or
 * -1 to fail the message (the owner then sets reader->error_status if it
 * wants a specific answer). on_head may also return 1: "this message has no
 * body" (a response to HEAD). on_done may return 1 to pause the reader at
 * the end of the message. */
struct sl_reader_ops {
    int (*on_head)(void *owner);
    int (*on_body)(void *owner, const char *p, size_t n);
    int (*on_done)(void *owner);
};

struct sl_reader_limits {
    size_t max_line;            /* request line / status line -> 414 */
    size_t max_header_size;     /* all fields -> 431 */
    size_t max_headers;         /* field count -> 431 */
};

struct sl_hoff;

struct sl_reader {
    llhttp_t parser;
    const struct sl_reader_ops *ops;
    void *owner;                    /* borrowed */
    struct sl_reader_limits limits;
    struct sl_buf raw;              /* head strings, NUL-separated */
    struct sl_hoff *hoff;           /* owned: offsets into raw */
    struct sl_header *headers;      /* owned: built from hoff at head end */
    size_t nh, hcap;
    size_t line_len, header_bytes;
    int last;                       /* which data callback ran last */
    const char *feed_start;         /* the buffer of the current feed */
    const char *feed_end;
    const char *span_end;           /* where the last value span ended ... */
    const char *span_feed_end;      /* ... and the end of its buffer */
    int value_spans;                /* spans of the current value so far */
    char tail[2];                   /* the last two bytes of the previous feed */
    bool scan_head;                 /* checking line ends of a head still arriving */
    size_t scan_lines;
    bool in_head;
    bool in_msg;                    /* between message begin and complete */
    bool is_request;
    int error_status;               /* answer to give after a -1 */
    const char *error_reason;       /* static text for the log */
    struct sl_head head;            /* valid from on_head to the next message */
};

/* Prepares a reader for requests (is_request) or responses. ops and owner
 * are borrowed for the reader's life. */
void sl_reader_init(struct sl_reader *r, bool is_request,
                    const struct sl_reader_ops *ops, void *owner,
                    const struct sl_reader_limits *limits);

/* Releases the reader's memory. */
void sl_reader_fini(struct sl_reader *r);

/* Starts over on a fresh stream (a new connection). */
void sl_reader_reset(struct sl_reader *r);

/* Parses n bytes. *used receives how many were consumed. Returns 0 when all
 * were consumed, 1 when the owner paused at a message end, 2 when an
 * upgrade head ended (the rest belongs to the tunnel) and -1 on a protocol
 * error or a callback failure: r->error_status then holds the status to
 * answer with (400, 414, 431, 503, or 502 for responses). */
int sl_reader_feed(struct sl_reader *r, const char *p, size_t n, size_t *used);

/* Resumes after a pause (feed returned 1). */
void sl_reader_resume(struct sl_reader *r);

/* Resumes normal parsing after an upgrade that did not happen. */
void sl_reader_resume_after_upgrade(struct sl_reader *r);

/* Tells the reader the peer closed. Returns 0 when that ends the current
 * message cleanly (close-delimited body, or between messages) and -1 when a
 * message was cut short. */
int sl_reader_finish(struct sl_reader *r);

/* True between messages (nothing of the next message parsed yet). */
bool sl_reader_is_idle(const struct sl_reader *r);

/* True when the current message's body runs until the connection closes. */
bool sl_reader_needs_eof(const struct sl_reader *r);

/* Finds the first header named name (case-insensitive) in h; NULL if none. */
const struct sl_header *sl_head_find(const struct sl_head *h, const char *name,
                                     size_t name_len);

/* True when a comma-separated header value contains token (case-insensitive). */
bool sl_value_has_token(const char *value, size_t len, const char *token);

/* The 2 bytes at p, in host order, whatever p's alignment: for comparing
 * names a word at a time (memcpy compiles to one unaligned load). */
static inline uint16_t sl_load16(const char *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The 4 bytes at p, as sl_load16. */
static inline uint32_t sl_load32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The 8 bytes at p, as sl_load16. */
static inline uint64_t sl_load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Case-insensitive compare of a header name against a lowercase literal.
 * Inline: the head builders ask it of every field, and most answers are
 * "no" from the length alone. */
static inline bool sl_name_is(const struct sl_header *hd, const char *lower, size_t len)
{
    if (hd->name_len != len)
        return false;
    /* Field names are tokens, so OR-ing 0x20 folds letters and leaves the
     * other token characters that could collide ('@'..'_' minus letters)
     * out of every name we compare against. Done a word at a time, with
     * overlapping words for the tail, every load stays inside both
     * strings; with a literal the compiler folds lower's words into
     * immediates. */
    const char *n = hd->name;
    if (len >= 8) {
        for (size_t i = 0; i + 8 < len; i += 8)
            if ((sl_load64(n + i) | 0x2020202020202020u) != sl_load64(lower + i))
                return false;
        return (sl_load64(n + len - 8) | 0x2020202020202020u) == sl_load64(lower + len - 8);
    }
    if (len >= 4)
        return (sl_load32(n) | 0x20202020u) == sl_load32(lower) &&
               (sl_load32(n + len - 4) | 0x20202020u) == sl_load32(lower + len - 4);
    if (len >= 2)
        return (uint16_t)(sl_load16(n) | 0x2020u) == sl_load16(lower) &&
               (uint16_t)(sl_load16(n + len - 2) | 0x2020u) == sl_load16(lower + len - 2);
    return len == 0 || (n[0] | 0x20) == lower[0];
}

#endif
