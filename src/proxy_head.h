/* Building the heads that cross the proxy: the request head sent to an
 * origin and the response head sent back to the client. Both drop
 * hop-by-hop fields, add the forwarding fields and set the framing the
 * proxy itself chose. */
#ifndef SL_PROXY_HEAD_H
#define SL_PROXY_HEAD_H

#include <stdbool.h>

#include "buf.h"

struct sl_conn;
struct sl_upconn;

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
