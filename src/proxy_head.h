/* Building the heads that cross the proxy: the request head sent to an
 * origin and the response head sent back to the client. Both drop
 * hop-by-hop fields, add the forwarding fields and set the framing the
 * proxy itself chose. */
#ifndef SL_PROXY_HEAD_H
#define SL_PROXY_HEAD_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "http1.h"

struct sl_conn;
struct sl_upconn;

/* The fields the head builders treat specially, as bits so that each
 * builder drops what it must with one test against a mask. */
enum {
    SL_FIELD_HOP = 1 << 0,              /* hop-by-hop, see sl_is_hop_by_hop */
    SL_FIELD_CONNECTION = 1 << 1,       /* hop-by-hop, and lists more */
    SL_FIELD_CONTENT_LENGTH = 1 << 2,
    SL_FIELD_HOST = 1 << 3,
    SL_FIELD_EXPECT = 1 << 4,
    SL_FIELD_XFF = 1 << 5,              /* X-Forwarded-For */
    SL_FIELD_XFH = 1 << 6,              /* X-Forwarded-Host */
    SL_FIELD_XFP = 1 << 7,              /* X-Forwarded-Proto */
};

/* The names behind the SL_FIELD_ kinds, as one list that makes both the
 * length mask and the switch below: ONE(name, kind) for a length only one
 * name has, TWO(name, kind, name, kind) for two names of one length (a
 * third length clash is a duplicate case label, a compile error). The
 * hop-by-hop ones (RFC 9110 §7.6.1) are Connection, Proxy-Connection,
 * Keep-Alive, TE, Transfer-Encoding, Upgrade, and Trailer, since trailers
 * are not forwarded. */
#define SL_FIELD_NAMES(ONE, TWO)                                                  \
    ONE("te", SL_FIELD_HOP)                                                       \
    ONE("host", SL_FIELD_HOST)                                                    \
    ONE("expect", SL_FIELD_EXPECT)                                                \
    TWO("upgrade", SL_FIELD_HOP, "trailer", SL_FIELD_HOP)                         \
    TWO("connection", SL_FIELD_CONNECTION, "keep-alive", SL_FIELD_HOP)            \
    ONE("content-length", SL_FIELD_CONTENT_LENGTH)                                \
    ONE("x-forwarded-for", SL_FIELD_XFF)                                          \
    TWO("proxy-connection", SL_FIELD_HOP, "x-forwarded-host", SL_FIELD_XFH)       \
    TWO("transfer-encoding", SL_FIELD_HOP, "x-forwarded-proto", SL_FIELD_XFP)

/* Bit n set when some name above is n bytes long (mod 32). */
#define SL_FIELD_BIT1(a, ka) | 1u << ((sizeof a - 1) & 31)
#define SL_FIELD_BIT2(a, ka, b, kb) SL_FIELD_BIT1(a, ka)
#define SL_FIELD_LENGTHS (0u SL_FIELD_NAMES(SL_FIELD_BIT1, SL_FIELD_BIT2))

/* Which of the SL_FIELD_ kinds hd's name is, or 0 for the ordinary
 * end-to-end field. sl_is_hop_by_hop and both head builders ask here.
 * Always inline, and the length tried against SL_FIELD_LENGTHS first,
 * because every field that crosses the proxy is asked and most have a
 * length no special name has. */
static inline __attribute__((always_inline)) unsigned sl_field_kind(const struct sl_header *hd)
{
    if (!((SL_FIELD_LENGTHS >> (hd->name_len & 31)) & 1))
        return 0;
    /* The array sizes check that TWO's names have one length. */
#define SL_FIELD_CASE1(a, ka)                                   \
    case sizeof a - 1:                                          \
        return sl_name_is(hd, a, sizeof a - 1) ? (ka) : 0;
#define SL_FIELD_CASE2(a, ka, b, kb)                            \
    case sizeof a - 1:                                          \
        if (sl_name_is(hd, a, sizeof a - 1))                    \
            return ka;                                          \
        return sl_name_is(hd, b, sizeof(char[sizeof a == sizeof b ? sizeof b - 1 : -1])) \
            ? (kb) : 0;
    switch (hd->name_len) {
    SL_FIELD_NAMES(SL_FIELD_CASE1, SL_FIELD_CASE2)
    default:
        return 0;
    }
#undef SL_FIELD_CASE1
#undef SL_FIELD_CASE2
}

/* Appends to out the request head for the client's current request as it
 * goes to the backend of u: origin-form target, HTTP/1.1, Host (the
 * client's, or the backend address when preserve_host is off), the client's
 * end-to-end fields, X-Forwarded-For/-Proto/-Host and Via as configured, and
 * Content-Length or Transfer-Encoding: chunked matching how the body will be
 * sent. Returns 0, or -1 on OOM. */
int sl_proxy_build_request_head(struct sl_conn *c, struct sl_upconn *u, struct sl_buf *out);

/* Appends to the client's output the head of the response u has parsed:
 * status line, end-to-end fields, Via, the framing in c->req.framing and
 * the Connection field the client needs. interim heads (1xx) carry only the
 * status line and fields. Returns 0, or -1 on OOM. */
int sl_proxy_build_response_head(struct sl_conn *c, struct sl_upconn *u, bool interim);

#endif
