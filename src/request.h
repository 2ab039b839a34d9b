/* The client request: what the request reader reports as a head, body and
 * end is turned here into routing, limits and proxying decisions. */
#ifndef SL_REQUEST_H
#define SL_REQUEST_H

#include "http1.h"

/* Reader callbacks for client connections; the owner is a struct sl_conn. */
extern const struct sl_reader_ops sl_request_reader_ops;

/* True when name is a hop-by-hop field a proxy must not forward (RFC 9110
 * §7.6.1: Connection, Proxy-Connection, Keep-Alive, TE, Transfer-Encoding,
 * Upgrade; and Trailer, since trailers are not forwarded). */
bool sl_is_hop_by_hop(const struct sl_header *hd);

/* True when hd is named in one of the head's Connection fields (and so is
 * hop-by-hop too). Host is never treated as such. */
bool sl_is_connection_listed(const struct sl_head *h, const struct sl_header *hd);

#endif
