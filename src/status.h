/* HTTP status codes: the standard reason phrases, shared by the proxy and
 * the bundled origin. */
#ifndef SL_STATUS_H
#define SL_STATUS_H

/* Standard reason phrase for a status code (RFC 9110 §15), "Unknown" for a
 * code without one. The string is static. */
const char *sl_status_reason(int status);

#endif
