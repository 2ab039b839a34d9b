-- lua/sluice/base.lua: what every API module shares: the C functions
-- (src/lua_ffi.c, reached through LuaJIT FFI), scratch out-parameters, the
-- state of the hook being run, and argument and phase checks.
--
-- Trusted code only: plugin code never sees this module, the ffi module, a
-- C function or a cdata value. API modules cache what they need from here
-- as upvalues, so a hook that calls sluice.request.get_header() runs a
-- compiled trace with one C call and one string copy, and allocates
-- nothing else.
--
-- Tests replace this module's only dependency: put a table with cdef, C,
-- new and string (ffi's subset used here) in package.loaded.ffi before the
-- first require (spec/unit/lua_api_spec.lua does).

local ffi = require "ffi"

local error, type, tostring, rawset, select = error, type, tostring, rawset, select
local setmetatable = setmetatable
local band = bit.band

local M = {}

ffi.cdef [[
int sl_ffi_method(const char **p, size_t *n);
int sl_ffi_path(const char **p, size_t *n);
int sl_ffi_query(const char **p, size_t *n);
int sl_ffi_client_addr(const char **p, size_t *n);
int sl_ffi_request_id(const char **p, size_t *n);
int sl_ffi_set_method(const char *p, size_t n);
int sl_ffi_set_path(const char *p, size_t n);
int sl_ffi_set_query(const char *p, size_t n);
int sl_ffi_header_get(int side, const char *name, size_t nlen, size_t index,
                      const char **p, size_t *n);
int sl_ffi_header_count(int side);
int sl_ffi_header_at(int side, size_t i, const char **name, size_t *nlen,
                     const char **value, size_t *vlen);
int sl_ffi_header_set(int side, const char *name, size_t nlen,
                      const char *value, size_t vlen);
int sl_ffi_header_add(int side, const char *name, size_t nlen,
                      const char *value, size_t vlen);
int sl_ffi_header_remove(int side, const char *name, size_t nlen);
int sl_ffi_header_set_known(int side, const char *name, size_t nlen,
                            const char *value, size_t vlen);
int sl_ffi_header_add_known(int side, const char *name, size_t nlen,
                            const char *value, size_t vlen);
int sl_ffi_status(void);
int sl_ffi_set_status(int status);
int sl_ffi_respond(int status, const char *body, size_t len);
int sl_ffi_body_get(int side, const char **p, size_t *n);
int sl_ffi_body_set(int side, const char *p, size_t n);
int sl_ffi_ctx_get(const char *key, size_t klen, const char **p, size_t *n);
int sl_ffi_ctx_set(const char *key, size_t klen, const char *value, size_t vlen);
int sl_ffi_log(int level, const char *plugin, const char *msg, size_t len);
int sl_ffi_log_enabled(int level);
int sl_ffi_log_set_field(const char *key, size_t klen, const char *value, size_t vlen);
int sl_ffi_metric_define(const char *plugin, int type, const char *name, const char *help,
                         const double *buckets, int nbuckets, char *err, size_t errlen);
int sl_ffi_metric_add(int handle, double n);
int sl_ffi_metric_observe(int handle, double v);
double sl_ffi_now_ms(void);
double sl_ffi_monotonic_ms(void);
int sl_ffi_route(const char **host, size_t *hlen, const char **path, size_t *plen);
int sl_ffi_upstream_name(const char **p, size_t *n);
int sl_ffi_set_upstream(const char *p, size_t n);
int sl_ffi_backend_count(void);
int sl_ffi_backend_at(size_t i, const char **addr, size_t *alen, int *weight,
                      double *cooldown_ms);
int sl_ffi_set_backend(const char *p, size_t n);
int sl_ffi_random_bytes(char *buf, size_t n);
int sl_ffi_random_hex(char *out, size_t n);
int sl_ffi_random_uuid(char *out);
struct sl_shdict;
struct sl_shdict *sl_ffi_shdict_open(const char *name, size_t len);
void sl_ffi_shdict_close(struct sl_shdict *d);
int sl_ffi_shdict_get(struct sl_shdict *d, const char *key, size_t klen, int *type,
                      double *num, char *buf, size_t *len);
int sl_ffi_shdict_set(struct sl_shdict *d, const char *key, size_t klen, int type, double num,
                      const char *s, size_t slen, int64_t ttl_ms);
int sl_ffi_shdict_add(struct sl_shdict *d, const char *key, size_t klen, int type, double num,
                      const char *s, size_t slen, int64_t ttl_ms);
int sl_ffi_shdict_incr(struct sl_shdict *d, const char *key, size_t klen, double by,
                       int has_init, double init, int64_t init_ttl_ms, double *result);
int sl_ffi_shdict_cas(struct sl_shdict *d, const char *key, size_t klen, int otype,
                      double onum, const char *os, size_t olen, int ntype, double nnum,
                      const char *ns, size_t nlen, int64_t ttl_ms);
int sl_ffi_shdict_delete(struct sl_shdict *d, const char *key, size_t klen);
int sl_ffi_shdict_ttl(struct sl_shdict *d, const char *key, size_t klen, double *ttl_ms);
int sl_ffi_shdict_flush_all(struct sl_shdict *d);
int sl_ffi_shdict_space(struct sl_shdict *d, double *capacity, double *used);
]]

M.C = ffi.C
M.new = ffi.new
M.string = ffi.string
M.gc = ffi.gc

-- Return codes of the sl_ffi_* functions (src/api.h, src/lua_ffi.h).
M.OK = 0
M.NOT_FOUND = 1
M.EINVAL = -1
M.ENOMEM = -2
M.EPHASE = -3
M.ENOREQ = -100

-- Header sides (enum sl_api_side).
M.REQUEST = 0
M.RESPONSE = 1

-- Phases: the numbers are enum sl_phase's (src/plugin.h); init is ours.
M.REQUEST_HEADERS = 0
M.REQUEST_BODY = 1
M.BALANCER = 2
M.RESPONSE_HEADERS = 3
M.RESPONSE_BODY = 4
M.LOG = 5
M.INIT = 6

M.PHASE_NAMES = {
  [0] = "request_headers", "request_body", "balancer",
  "response_headers", "response_body", "log", "init",
}

-- phases(a, b, ...) -> the set of those phases, for check_phase(): a bit
-- mask (bit 1 << phase), a number, so that a wrapper holding it as an
-- upvalue gives the JIT a constant to test against.
local function phases(...)
  local set = 0
  for i = 1, select("#", ...) do set = set + 2 ^ select(i, ...) end
  return set
end
M.phases = phases

M.IN_REQUEST = phases(0, 1, 2, 3, 4, 5)
M.REQUEST_PHASES = phases(0, 1, 2)
M.RESPONSE_PHASES = phases(3, 4, 5)
M.BALANCER_PHASE = phases(2)

-- The state of the hook being run, set by sluice.plugin_host.
M.plugin_name = "?"     -- this VM's plugin (one VM per plugin instance)
M.body_request = false  -- the plugin declared body = { request = true }
M.body_response = false

-- The phase of the hook being run and whether it called
-- sluice.response.exit(). They are read and written on every hook and
-- every API call, so they live in upvalues (a load or a store in a trace)
-- rather than in fields of this table (a hash slot behind guards). The
-- phase is kept as its bit, what check_phase() tests: one value to set
-- and clear per hook. base.phase and base.exited still read and write
-- them, through the metatable below (tests and rare paths); hot code uses
-- enter(), leave(), get_phase() and check_phase().
local phase_bit = 0     -- 2 ^ phase while a hook runs; 0 outside one, a bit in no set
local exited = false    -- sluice.response.exit() was called in this hook

local PHASE_OF_BIT = {}
for ph = 0, M.INIT do PHASE_OF_BIT[2 ^ ph] = ph end

--- enter(ph): a hook of phase ph starts.
function M.enter(ph)
  phase_bit = 2 ^ ph
end

--- leave() -> whether the hook called sluice.response.exit(): the hook
--- is over (no phase), and exited is false again.
function M.leave()
  phase_bit = 0
  local e = exited
  if e then exited = false end
  return e
end

--- get_phase() -> the phase number of the hook being run, nil outside one.
local function get_phase()
  return PHASE_OF_BIT[phase_bit]
end
M.get_phase = get_phase

--- set_exited(): sluice.response.exit() ends this hook with a reply.
function M.set_exited()
  exited = true
end

setmetatable(M, {
  __index = function(_, k)
    if k == "phase" then return get_phase() end
    if k == "exited" then return exited end
    return nil
  end,
  __newindex = function(t, k, v)
    if k == "phase" then
      phase_bit = v ~= nil and 2 ^ v or 0
    elseif k == "exited" then
      exited = v
    else
      rawset(t, k, v)
    end
  end,
})

-- The error sluice.response.exit() raises to end the hook; the host
-- recognises it (with M.exited) and answers "respond".
M.EXIT = "sluice: response.exit"

-- Scratch out-parameters. One hook runs at a time in a VM, and every user
-- copies what it needs (ffi.string) before the next C call.
M.pp = ffi.new("const char *[1]")
M.pn = ffi.new("size_t[1]")
M.pp2 = ffi.new("const char *[1]")
M.pn2 = ffi.new("size_t[1]")

-- check_phase(set, fname) raises, blaming the plugin's call site, unless a
-- hook in one of the phases of set (phases()) is running. Call it (and
-- arg_error) as a statement from the function the plugin called, or from a
-- helper that function tail-calls.
function M.check_phase(set, fname)
  if band(set, phase_bit) == 0 then
    local ph = get_phase()
    if ph == nil then
      error(fname .. ": not available outside a plugin hook", 3)
    end
    error(fname .. ": not available in the " .. M.PHASE_NAMES[ph] .. " phase", 3)
  end
end

-- arg_error(fname, n, expected, v) raises "bad argument" at the plugin's
-- call site.
function M.arg_error(fname, n, expected, v)
  error(fname .. ": bad argument #" .. n .. " (" .. expected .. " expected, got "
        .. type(v) .. ")", 3)
end

-- fail(fname, rc, what) turns a C return code into the Lua convention:
-- misuse (a bad value, the wrong phase, no request) raises at the plugin's
-- call site ("invalid <what>"); a runtime failure (out of memory) returns
-- nil, message. Always tail-call it (`return fail(...)`) from the function
-- the plugin called: its error level counts on that frame being gone.
function M.fail(fname, rc, what)
  if rc == M.ENOMEM then
    return nil, "out of memory"
  elseif rc == M.EINVAL then
    error(fname .. ": invalid " .. (what or "argument"), 2)
  elseif rc == M.EPHASE then
    local ph = get_phase()
    error(fname .. ": not available " .. (ph and ("in the " .. M.PHASE_NAMES[ph] .. " phase")
          or "outside a plugin hook"), 2)
  elseif rc == M.ENOREQ then
    error(fname .. ": not available outside a request", 2)
  end
  return nil, "error " .. tostring(rc)
end

return M
