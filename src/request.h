/* The client request: what the request reader reports as a head, body and
 * end is turned here into routing, limits and proxying decisions. */
#ifndef SL_REQUEST_H
#define SL_REQUEST_H

#include "http1.h"

/* Reader callbacks for client connections; the owner is a struct sl_conn. */
extern const struct sl_reader_ops sl_request_reader_ops;

struct sl_conn;

/* Sets up the request on c for the head its reader has just parsed
 * (c->reader.head), against the generation the request pinned
 * (c->req.wg->gen, set by the caller with sl_worker_pin): the header view,
 * start time, request id, the flags (HEAD, keep-alive, body, idempotent,
 * upgrade), the target, Host and authority, the route and its upstream,
 * and the plugin chain. It runs no plugin and sends nothing: the reader's
 * on_head does that next, and the plugin test harness (testing.c) stops
 * here. Returns 0 when the request may go on to its plugins and the
 * proxy, or the status the proxy answers with itself: 400 (bad target or
 * Host), 404 (no route), 405 (CONNECT), 413 (declared body too large),
 * 417 (unknown expectation). */
int sl_request_prepare(struct sl_conn *c);

/* True when name is a hop-by-hop field a proxy must not forward (RFC 9110
 * §7.6.1: Connection, Proxy-Connection, Keep-Alive, TE, Transfer-Encoding,
 * Upgrade; and Trailer, since trailers are not forwarded). */
bool sl_is_hop_by_hop(const struct sl_header *hd);

#endif
