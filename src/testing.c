#include "testing.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "conn.h"
#include "gen.h"
#include "headers.h"
#include "lua_vm.h"
#include "plugin.h"
#include "proxy.h"
#include "proxy_head.h"
#include "request.h"
#include "shdict.h"
#include "upstream.h"
#include "worker.h"

struct sl_test_plugin {
    struct sl_gen *gen;                 /* a reference: owns the plugin and its config */
    struct sl_plugin *p;                /* borrowed from gen */
};

/* A plugin a request ran on, kept alive until the request ends. */
struct test_call {
    struct sl_plugin *p;
    struct sl_gen *gen;                 /* a reference */
};

/* A request with its surroundings. The connection comes first: the
 * harness hands out &conn, and sl_conn_free frees the whole block. */
struct test_req {
    struct sl_conn conn;
    struct sl_worker worker;            /* worker 0, without loop, listeners or pools */
    struct sl_worker_gen wg;            /* the worker's state for the generation (no pools) */
    struct sl_upconn up;                /* the origin: backend name, response reader */
    struct sl_buf up_head;              /* the request head as sent upstream */
    struct sl_buf req_raw_body;         /* the client's body, de-chunked */
    struct sl_buf resp_raw_body;        /* the origin's body (sl_test_origin_body) */
    bool head_parsed;
    bool up_head_built;
    bool has_response;                  /* an origin response head was parsed */
    bool response_head_built;
    int status;                         /* sl_request_prepare's answer */
    struct test_call *calls;            /* owned */
    size_t ncalls, callcap;
};

_Static_assert(offsetof(struct test_req, conn) == 0, "sl_conn_free frees the test_req");

static struct sl_gen *default_gen;      /* the generation requests are made on */
static uint64_t next_serial;            /* request ids stay unique across fake workers */

static struct test_req *test_of(struct sl_conn *c)
{
    return (struct test_req *)c;
}

int sl_test_init(const char *lua_dir, char *err, size_t errlen)
{
    if (lua_dir != NULL && setenv("SLUICE_LUA_PATH", lua_dir, 1) < 0) {
        snprintf(err, errlen, "sl_test_init: cannot set SLUICE_LUA_PATH");
        return -1;
    }
    return sl_lua_init(1, err, errlen);
}

/* --- plugins ----------------------------------------------------------------------- */

static void join_errors(const struct sl_config_errors *errs, char *err, size_t errlen)
{
    size_t used = 0;
    err[0] = '\0';
    for (size_t i = 0; i < errs->n && used < errlen; i++)
        used += (size_t)snprintf(err + used, errlen - used, "%s%s", i ? "\n" : "", errs->msgs[i]);
}

/* The generation of the configuration file, with one reference, or NULL
 * with the messages in err. */
static struct sl_gen *gen_from_file(const char *config_file, char *err, size_t errlen)
{
    struct sl_config_errors errs = { 0 };
    struct sl_config *cfg = sl_config_load(config_file, &errs);
    if (cfg == NULL) {
        join_errors(&errs, err, errlen);
        sl_config_errors_fini(&errs);
        return NULL;
    }
    sl_config_errors_fini(&errs);
    return sl_gen_new(cfg, err, errlen);
}

struct sl_test_plugin *sl_test_plugin_load(const char *config_file, const char *name,
                                           char *err, size_t errlen)
{
    struct sl_gen *g = gen_from_file(config_file, err, errlen);
    if (g == NULL)
        return NULL;
    struct sl_plugin *p = NULL;
    for (size_t i = 0; i < g->nglobal_plugins && p == NULL; i++)
        if (strcmp(g->plugins[i]->name, name) == 0)
            p = g->plugins[i];
    struct sl_test_plugin *tp = p ? calloc(1, sizeof *tp) : NULL;
    if (tp == NULL) {
        snprintf(err, errlen, p ? "plugin %s: out of memory" : "%s: no global plugin named %s",
                 p ? name : config_file, name);
        sl_gen_unref(g);
        return NULL;
    }
    tp->gen = g;
    tp->p = p;
    return tp;
}

void sl_test_plugin_free(struct sl_test_plugin *tp)
{
    if (tp == NULL)
        return;
    sl_gen_unref(tp->gen);
    free(tp);
}

unsigned sl_test_plugin_phases(const struct sl_test_plugin *tp)
{
    return tp->p->phases;
}

/* The first request_body call buffers the client's body as the proxy does
 * (refusing one over limits.max_body_buffer, 413); every call opens it to
 * the hook. */
static int enter_request_body(struct test_req *t, char *err, size_t errlen)
{
    struct sl_req *r = &t->conn.req;
    if (r->head_sent || r->local_status != 0) {
        snprintf(err, errlen, "request_body: %s", r->head_sent
                 ? "the request head already went upstream"
                 : "the request was answered locally: the proxy runs no more request hooks");
        return -1;
    }
    if (!r->body_done) {
        snprintf(err, errlen, "request_body: the request body is incomplete: the proxy runs "
                 "this phase once the whole body is in");
        return -1;
    }
    if (r->req_body.state == SL_BODY_NONE) {
        size_t max = r->wg->gen->cfg->limits.max_body_buffer;
        if (sl_buf_len(&t->req_raw_body) > max) {
            snprintf(err, errlen, "request_body: 413 Payload Too Large: the body is over "
                     "limits.max_body_buffer (%zu): the proxy answers itself", max);
            return -1;
        }
        if (sl_body_start(&r->req_body, 0) < 0 ||
            sl_body_append(&r->req_body, sl_buf_head(&t->req_raw_body),
                           sl_buf_len(&t->req_raw_body), max) != 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    r->req_body.state = SL_BODY_OPEN;
    return 0;
}

/* The first response_body call buffers the body the client would get: the
 * origin's (empty for HEAD, 204 and 304), or a local reply's, whose
 * response phase it then enters as sl_conn_reply does. */
static int enter_response_body(struct test_req *t, char *err, size_t errlen)
{
    struct sl_req *r = &t->conn.req;
    if (r->resp_started) {
        snprintf(err, errlen, "response_body: the response head was already built");
        return -1;
    }
    if (!t->has_response && r->local_status == 0) {
        snprintf(err, errlen, "response_body: there is no response yet: begin one "
                 "from the origin, or let a plugin reply");
        return -1;
    }
    if (r->resp_body.state == SL_BODY_NONE) {
        const char *p = "";
        size_t n = 0;
        if (t->has_response) {
            int st = t->up.reader.head.status;
            if (!(r->is_head || st == 204 || st == 304)) {
                p = sl_buf_head(&t->resp_raw_body);
                n = sl_buf_len(&t->resp_raw_body);
            }
        } else {
            if (!r->in_reply_phase) {
                r->status = r->local_status;
                r->in_reply_phase = true;
            }
            p = r->local_body != NULL ? r->local_body : "";
            n = r->local_body_len;
        }
        if (sl_body_start(&r->resp_body, 0) < 0 || sl_body_replace(&r->resp_body, p, n) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    r->resp_body.state = SL_BODY_OPEN;
    return 0;
}

/* Refuses a call the proxy would never make at this point of the request;
 * enters a local reply's response phase the way sl_conn_reply does. */
static int check_order(struct test_req *t, int phase, char *err, size_t errlen)
{
    struct sl_req *r = &t->conn.req;
    if (phase == SL_PHASE_REQUEST_HEADERS) {
        if (r->req_body.state != SL_BODY_NONE) {
            snprintf(err, errlen, "request_headers: request_body already ran (the proxy runs "
                     "request_headers first)");
            return -1;
        }
        if (r->head_sent) {
            snprintf(err, errlen, "request_headers: the request head already went upstream");
            return -1;
        }
        if (r->local_status != 0) {
            snprintf(err, errlen, "request_headers: the request was answered locally (%d): "
                     "the proxy runs no more request hooks", r->local_status);
            return -1;
        }
    } else if (phase == SL_PHASE_BALANCER) {
        if (r->head_sent || r->local_status != 0) {
            snprintf(err, errlen, "balancer: %s", r->head_sent
                     ? "the request head already went upstream"
                     : "the request was answered locally: the proxy runs no more request hooks");
            return -1;
        }
    } else if (phase == SL_PHASE_REQUEST_BODY) {
        return enter_request_body(t, err, errlen);
    } else if (phase == SL_PHASE_RESPONSE_BODY) {
        return enter_response_body(t, err, errlen);
    } else if (phase == SL_PHASE_RESPONSE_HEADERS) {
        if (r->resp_body.state != SL_BODY_NONE) {
            snprintf(err, errlen, "response_headers: response_body already ran (the proxy runs "
                     "response_headers first)");
            return -1;
        }
        if (r->resp_started) {
            snprintf(err, errlen, "response_headers: the response head was already built");
            return -1;
        }
        if (!t->has_response && r->local_status == 0) {
            snprintf(err, errlen, "response_headers: there is no response yet: begin one "
                     "from the origin, or let a plugin reply");
            return -1;
        }
        if (!t->has_response && !r->in_reply_phase) {
            r->status = r->local_status;
            r->in_reply_phase = true;
        }
    }
    return 0;
}

static int remember(struct test_req *t, struct sl_test_plugin *tp)
{
    for (size_t i = 0; i < t->ncalls; i++)
        if (t->calls[i].p == tp->p)
            return 0;
    if (t->ncalls == t->callcap) {
        size_t cap = t->callcap ? t->callcap * 2 : 4;
        struct test_call *v = realloc(t->calls, cap * sizeof *v);
        if (v == NULL)
            return -1;
        t->calls = v;
        t->callcap = cap;
    }
    sl_gen_ref(tp->gen);
    t->calls[t->ncalls++] = (struct test_call){ .p = tp->p, .gen = tp->gen };
    return 0;
}

int sl_test_plugin_call(struct sl_test_plugin *tp, int phase, struct sl_conn *c, char *err,
                        size_t errlen, int *budget)
{
    struct test_req *t = test_of(c);
    struct sl_req *r = &c->req;
    struct sl_plugin *p = tp->p;
    *budget = 0;
    err[0] = '\0';
    if (phase < 0 || phase >= SL_PHASE_COUNT) {
        snprintf(err, errlen, "no phase %d", phase);
        return SL_TEST_MISUSE;
    }
    if (check_order(t, phase, err, errlen) < 0)
        return SL_TEST_MISUSE;
    int rc = SL_ACTION_CONTINUE;
    if (remember(t, tp) < 0) {
        snprintf(err, errlen, "out of memory");
        rc = SL_TEST_MISUSE;
    } else if ((p->phases & (1u << phase)) != 0) {
        bool b = false;
        /* The request was made on the harness's default generation: the
         * plugin's shared dicts are those of its own. */
        const struct sl_shdict_set *scope = sl_shdict_scope_enter(tp->gen->shdicts);
        r->in_balancer = phase == SL_PHASE_BALANCER;
        rc = p->kind->call(p, (enum sl_phase)phase, c, err, errlen, &b);
        r->in_balancer = false;
        sl_shdict_scope_leave(scope);
        *budget = b;
    }
    /* The origin the head names (Host when not kept) follows the balancer. */
    if (phase == SL_PHASE_BALANCER)
        t->up.backend_name = (r->chosen ? r->chosen : &r->upstream->backends[0])->conf->addr.text;
    /* A body is open to plugins only while its phase runs. */
    if (phase == SL_PHASE_REQUEST_BODY)
        r->req_body.state = SL_BODY_DONE;
    if (phase == SL_PHASE_RESPONSE_BODY)
        r->resp_body.state = SL_BODY_DONE;
    /* As sl_conn_reply and sl_body_run_reply: a reply set in a local
     * reply's response phases replaces it, fields (and body) included. */
    if (rc == SL_ACTION_RESPOND && r->in_reply_phase &&
        (phase == SL_PHASE_RESPONSE_HEADERS || phase == SL_PHASE_RESPONSE_BODY)) {
        memset(&r->resp_headers, 0, sizeof r->resp_headers);
        r->status = r->local_status;
        if (phase == SL_PHASE_RESPONSE_BODY &&
            sl_body_replace(&r->resp_body, r->local_body ? r->local_body : "",
                            r->local_body_len) < 0) {
            snprintf(err, errlen, "out of memory");
            return SL_TEST_MISUSE;
        }
    }
    return rc;
}

/* --- requests ---------------------------------------------------------------------- */

static int request_on_head(void *owner)
{
    struct sl_conn *c = owner;
    struct test_req *t = test_of(c);
    c->state = SL_CONN_ACTIVE;
    c->req.wg = sl_worker_pin(c->w);
    t->status = sl_request_prepare(c);
    t->head_parsed = true;
    return 0;
}

static int request_on_body(void *owner, const char *p, size_t n)
{
    struct sl_conn *c = owner;
    c->req.body_bytes += n;
    return sl_buf_append(&test_of(c)->req_raw_body, p, n);
}

/* Pauses at the end of the message: bytes after it are not a concern. */
static int request_on_done(void *owner)
{
    struct sl_conn *c = owner;
    c->req.body_done = true;
    return 1;
}

static const struct sl_reader_ops request_ops = {
    .on_head = request_on_head,
    .on_body = request_on_body,
    .on_done = request_on_done,
};

/* 1: no body follows (the body of the simulated response is not ours). */
static int response_on_head(void *owner)
{
    struct test_req *t = owner;
    t->has_response = true;
    return 1;
}

static int response_on_body(void *owner, const char *p, size_t n)
{
    (void)owner;
    (void)p;
    (void)n;
    return 0;
}

static int response_on_done(void *owner)
{
    (void)owner;
    return 1;
}

static const struct sl_reader_ops response_ops = {
    .on_head = response_on_head,
    .on_body = response_on_body,
    .on_done = response_on_done,
};

static struct sl_gen *get_default_gen(char *err, size_t errlen)
{
    if (default_gen != NULL)
        return default_gen;
    static const char *const tos[] = { "127.0.0.1:9001" };
    struct sl_config_errors errs = { 0 };
    struct sl_config *cfg = sl_config_quick("127.0.0.1:8080", tos, 1, 1, &errs);
    if (cfg == NULL) {
        join_errors(&errs, err, errlen);
        sl_config_errors_fini(&errs);
        return NULL;
    }
    sl_config_errors_fini(&errs);
    default_gen = sl_gen_new(cfg, err, errlen);
    return default_gen;
}

static struct sl_reader_limits reader_limits(const struct sl_gen *g)
{
    const struct sl_limits_conf *lim = &g->cfg->limits;
    return (struct sl_reader_limits){
        .max_line = lim->max_request_line,
        .max_header_size = lim->max_header_size,
        .max_headers = lim->max_headers,
    };
}

struct sl_conn *sl_test_request_new(const char *raw, size_t len, const char *peer,
                                    char *err, size_t errlen)
{
    return sl_test_request_new_on(NULL, raw, len, peer, err, errlen);
}

struct sl_conn *sl_test_request_new_on(const char *config_file, const char *raw, size_t len,
                                       const char *peer, char *err, size_t errlen)
{
    struct sl_gen *g = config_file ? gen_from_file(config_file, err, errlen)
                                   : get_default_gen(err, errlen);
    if (g == NULL)
        return NULL;
    if (config_file == NULL)
        sl_gen_ref(g);          /* the request's own; a file's came with it */
    struct test_req *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        sl_gen_unref(g);
        return NULL;
    }
    struct sl_worker *w = &t->worker;
    struct sl_conn *c = &t->conn;
    w->gen = g;
    t->wg.gen = g;
    w->cur = &t->wg;
    w->alog.fd = -1;
    w->next_request = next_serial;
    c->w = w;
    c->fd = -1;
    c->state = SL_CONN_IDLE;
    snprintf(c->peer, sizeof c->peer, "%s", peer ? peer : "127.0.0.1");
    struct sl_reader_limits rl = reader_limits(g);
    sl_reader_init(&c->reader, true, &request_ops, c, &rl);
    sl_reader_init(&t->up.reader, false, &response_ops, t, &rl);
    t->up.w = w;
    t->up.fd = -1;
    t->up.client = c;

    size_t used = 0;
    int rc = sl_reader_feed(&c->reader, raw, len, &used);
    next_serial = w->next_request;
    if (rc < 0 && !t->head_parsed) {
        snprintf(err, errlen, "%d %s: %s", c->reader.error_status,
                 sl_status_reason(c->reader.error_status),
                 c->reader.error_reason ? c->reader.error_reason : "malformed request");
    } else if (!t->head_parsed) {
        snprintf(err, errlen, "incomplete request head (it ends with an empty line: \\r\\n\\r\\n)");
    } else if (t->status != 0) {
        snprintf(err, errlen, "%d %s: the proxy answers this request itself, before any plugin",
                 t->status, sl_status_reason(t->status));
    } else if (rc < 0) {
        snprintf(err, errlen, "%d %s: the request body is malformed: %s",
                 c->reader.error_status, sl_status_reason(c->reader.error_status),
                 c->reader.error_reason ? c->reader.error_reason : "error");
    } else {
        t->up.backend_name = c->req.upstream->backends[0].conf->addr.text;
        return c;
    }
    sl_test_request_free(c);
    return NULL;
}

void sl_test_request_free(struct sl_conn *c)
{
    if (c == NULL)
        return;
    struct test_req *t = test_of(c);
    for (size_t i = 0; i < t->ncalls; i++) {
        struct sl_plugin *p = t->calls[i].p;
        if (p->kind->request_done != NULL)
            p->kind->request_done(p, c);
        sl_gen_unref(t->calls[i].gen);
    }
    free(t->calls);
    sl_reader_fini(&t->up.reader);
    sl_buf_fini(&t->up_head);
    sl_buf_fini(&t->req_raw_body);
    sl_buf_fini(&t->resp_raw_body);
    /* The connection unpins its generation as it goes: drop ours after. */
    struct sl_gen *g = t->worker.gen;
    sl_conn_free(c);
    sl_gen_unref(g);
}

int sl_test_balancer(struct sl_conn *c, const char **upstream, const char **backend)
{
    const struct sl_req *r = &c->req;
    *upstream = r->upstream->conf->name;
    *backend = r->chosen != NULL ? r->chosen->conf->addr.text : NULL;
    return 0;
}

const char *sl_test_upstream_head(struct sl_conn *c, size_t *len)
{
    struct test_req *t = test_of(c);
    if (c->req.local_status != 0)
        return NULL;
    if (!t->up_head_built) {
        sl_buf_clear(&t->up_head);
        if (sl_proxy_build_request_head(c, &t->up, &t->up_head) < 0)
            return NULL;
        t->up_head_built = true;
    }
    *len = sl_buf_len(&t->up_head);
    return sl_buf_head(&t->up_head);
}

int sl_test_response_begin(struct sl_conn *c, int status, const char *raw_headers,
                           size_t len, char *err, size_t errlen)
{
    struct test_req *t = test_of(c);
    struct sl_req *r = &c->req;
    size_t n;
    if (r->local_status != 0) {
        snprintf(err, errlen, "the request was answered locally (%d): it never reaches the origin",
                 r->local_status);
        return -1;
    }
    if (t->has_response) {
        snprintf(err, errlen, "the origin already responded");
        return -1;
    }
    if (status < 200 || status > 999) {
        snprintf(err, errlen, "status %d: the origin's final response is 200..999 "
                 "(interim responses never reach plugins)", status);
        return -1;
    }
    if (sl_test_upstream_head(c, &n) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct sl_buf text = { 0 };
    int rc = sl_buf_printf(&text, "HTTP/1.1 %d %s\r\n", status, sl_status_reason(status));
    rc |= sl_buf_append(&text, raw_headers, len);
    rc |= sl_buf_append(&text, "\r\n", 2);
    if (rc < 0) {
        sl_buf_fini(&text);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t used = 0;
    rc = sl_reader_feed(&t->up.reader, sl_buf_head(&text), sl_buf_len(&text), &used);
    sl_buf_fini(&text);
    if (rc < 0 || !t->has_response) {
        t->has_response = false;
        snprintf(err, errlen, "the origin's response head: %s",
                 rc < 0 && t->up.reader.error_reason ? t->up.reader.error_reason
                 : "malformed (each field line ends with \\r\\n)");
        return -1;
    }
    const struct sl_head *h = &t->up.reader.head;
    r->status = h->status;
    sl_hlist_view(&r->resp_headers, h->headers, h->nheaders);
    return 0;
}

int sl_test_origin_body(struct sl_conn *c, const char *p, size_t n, char *err, size_t errlen)
{
    struct test_req *t = test_of(c);
    if (!t->has_response || c->req.resp_started || c->req.resp_body.state != SL_BODY_NONE) {
        snprintf(err, errlen, !t->has_response ? "the origin has not responded yet"
                 : "the response body was already %s",
                 c->req.resp_started ? "sent" : "buffered for response_body");
        return -1;
    }
    sl_buf_clear(&t->resp_raw_body);
    if (sl_buf_append(&t->resp_raw_body, p, n) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

const char *sl_test_body(struct sl_conn *c, int side, size_t *len)
{
    struct test_req *t = test_of(c);
    const struct sl_req *r = &c->req;
    const struct sl_body *b = side == 1 ? &r->resp_body : &r->req_body;
    if (b->state != SL_BODY_NONE) {
        *len = sl_body_len(b);
        return sl_body_data(b);
    }
    const struct sl_buf *raw = side == 1 ? &t->resp_raw_body : &t->req_raw_body;
    *len = sl_buf_len(raw);
    return raw->data != NULL ? sl_buf_head(raw) : "";
}

/* response.c's choice, for a response whose body the harness does not
 * relay (one buffered for response_body goes with its own length). */
static enum sl_framing choose_framing(const struct sl_req *r, const struct sl_head *h)
{
    if (r->is_head || h->status == 204 || h->status == 304)
        return SL_FRAMING_NONE;
    if (r->resp_body.state != SL_BODY_NONE)
        return SL_FRAMING_LENGTH;
    if (h->has_length && !h->chunked)
        return SL_FRAMING_LENGTH;
    return r->head->http_minor >= 1 ? SL_FRAMING_CHUNKED : SL_FRAMING_CLOSE;
}

const char *sl_test_response_head(struct sl_conn *c, size_t *len)
{
    struct test_req *t = test_of(c);
    struct sl_req *r = &c->req;
    if (!t->has_response)
        return NULL;
    if (!t->response_head_built) {
        r->framing = choose_framing(r, &t->up.reader.head);
        if (r->framing == SL_FRAMING_CLOSE)
            r->keep_alive = false;
        r->resp_started = true;
        r->resp_mark_len = sl_buf_len(&c->out);
        r->resp_mark_written = c->bytes_written;
        if (sl_proxy_build_response_head(c, &t->up, false) < 0)
            return NULL;
        t->response_head_built = true;
    }
    *len = sl_buf_len(&c->out);
    return sl_buf_head(&c->out);
}

int sl_test_reply(struct sl_conn *c, const char **body, size_t *len)
{
    const struct sl_req *r = &c->req;
    if (r->local_status == 0)
        return 0;
    *body = r->local_body ? r->local_body : "";
    *len = r->local_body_len;
    if (r->resp_body.state != SL_BODY_NONE && !test_of(c)->has_response) {
        *body = sl_body_data(&r->resp_body);     /* as its response_body phase left it */
        *len = sl_body_len(&r->resp_body);
    }
    return r->in_reply_phase ? r->status : r->local_status;
}

bool sl_test_clock_init(void)
{
    sl_clock_init();
    return sl_clock_tsc;
}

int64_t sl_test_clock_ns(void)
{
    return sl_clock_ns();
}
