-- spec/plugin_harness.lua: run a plugin's hooks against a request built in
-- the spec, through the real implementation, without starting the proxy.
--
--   local harness = require "spec.plugin_harness"
--   local p = assert(harness.load("plugins-lua/headers.lua",
--                                 { request = { set = { ["X-A"] = "1" } } }))
--   local req = assert(harness.request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n"))
--   assert.equal("continue", p:call("request_headers", req))
--   print(req:upstream_head())
--
-- How: the core is built as build/libsluice.so (`make build/libsluice.so`)
-- and loaded here with ffi.load(path, true); its sl_test_* functions
-- (src/testing.h) do the work. A plugin is loaded from a sluice.yaml this
-- module writes to a temporary directory, by the same code the proxy runs
-- on startup: the YAML loader, the plugin lookup, src/lua_plugin.c with
-- its own Lua VM, lua/sluice/plugin_host.lua, the sandbox, the schema and
-- the budgets; or, for DIR/NAME.so, src/plugin_native.c (private copy,
-- dlopen, ABI checks, config_create) and the native host table. A hook runs through the same C call as in the proxy's
-- chain, and reaches the request through the sl_ffi_* functions of the
-- library: plugin code cannot tell the difference. The busted process's
-- own Lua state only holds the handles.
--
-- Requests are parsed by the real reader and set up as the proxy does
-- before its plugins run, on a default configuration (one upstream with
-- the backend 127.0.0.1:9001, a catch-all route, forwarding headers and
-- Via on). A request may carry its body (Content-Length or chunked) for
-- request_body; respond_from_origin takes the origin's body for
-- response_body; req:body(side) is the body that leaves the proxy. The
-- order of the proxy is enforced: p:call raises when a phase comes too
-- early or too late (response_headers before any response, request_headers
-- after the head went upstream, request_body before the whole body).
--
-- Misuse raises; a plugin that fails to load, or a request the proxy would
-- refuse, returns nil and the message.

if not package.path:find("./?.lua", 1, true) then
  package.path = "./?.lua;" .. package.path
end

local ffi = require "ffi"

-- Redeclaring is an error, and busted reloads this module for every file.
pcall(ffi.cdef, [[
  struct sl_conn;
  struct sl_test_plugin;
  int sl_test_init(const char *lua_dir, char *err, size_t errlen);
  struct sl_test_plugin *sl_test_plugin_load(const char *config_file, const char *name,
                                             char *err, size_t errlen);
  void sl_test_plugin_free(struct sl_test_plugin *tp);
  unsigned sl_test_plugin_phases(const struct sl_test_plugin *tp);
  int sl_test_plugin_call(struct sl_test_plugin *tp, int phase, struct sl_conn *c,
                          char *err, size_t errlen, int *budget);
  struct sl_conn *sl_test_request_new(const char *raw, size_t len, const char *peer,
                                      char *err, size_t errlen);
  void sl_test_request_free(struct sl_conn *c);
  struct sl_conn *sl_test_request_new_on(const char *config_file, const char *raw, size_t len,
                                         const char *peer, char *err, size_t errlen);
  int sl_test_balancer(struct sl_conn *c, const char **upstream, const char **backend);
  const char *sl_test_upstream_head(struct sl_conn *c, size_t *len);
  int sl_test_response_begin(struct sl_conn *c, int status, const char *raw_headers,
                             size_t len, char *err, size_t errlen);
  const char *sl_test_response_head(struct sl_conn *c, size_t *len);
  int sl_test_origin_body(struct sl_conn *c, const char *p, size_t n, char *err, size_t errlen);
  const char *sl_test_body(struct sl_conn *c, int side, size_t *len);
  int sl_test_reply(struct sl_conn *c, const char **body, size_t *len);
  size_t sl_api_header_count(struct sl_conn *c, int side);
  int sl_api_header_at(struct sl_conn *c, int side, size_t i, const char **name,
                       size_t *nlen, const char **value, size_t *vlen);
  int sl_api_ctx_get(struct sl_conn *c, const char *key, size_t klen, const char **p,
                     size_t *n);
  int sl_api_ctx_set(struct sl_conn *c, const char *key, size_t klen, const char *value,
                     size_t vlen);
  int sl_api_request_id(struct sl_conn *c, const char **p, size_t *n);
  void sl_log_set_level(int level);
  size_t sl_native_loaded_count(void);
  const char *sl_native_copy_dir(void);
  char *getcwd(char *buf, size_t size);
  char *mkdtemp(char *template);
]])

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local concat, sort = table.concat, table.sort
local format = string.format

local M = {}

local ERRLEN = 16384
local errbuf = ffi.new("char[?]", ERRLEN)
local pp = ffi.new("const char *[1]")
local pn = ffi.new("size_t[1]")
local pp2 = ffi.new("const char *[1]")
local pn2 = ffi.new("size_t[1]")
local budget_out = ffi.new("int[1]")

local MISUSE = -100                     -- SL_TEST_MISUSE
local SIDES = { request = 0, response = 1 }
local PHASES = {
  request_headers = 0, request_body = 1, balancer = 2,
  response_headers = 3, response_body = 4, log = 5,
}
local ACTIONS = { [0] = "continue", [1] = "respond", [-1] = "error" }
local LEVELS = { error = 0, warn = 1, info = 2, debug = 3 }

local function cwd()
  local buf = ffi.new("char[4096]")
  local p = ffi.C.getcwd(buf, 4096)
  if p == nil then error("plugin_harness: getcwd failed") end
  return ffi.string(p)
end

--- The repository root: $SLUICE_ROOT, else the working directory (busted
--- runs from the root).
M.root = os.getenv("SLUICE_ROOT") or cwd()

--- The library: $SLUICE_LIB, else build/libsluice.so under the root.
M.lib_path = os.getenv("SLUICE_LIB") or (M.root .. "/build/libsluice.so")

--- Where `make` put the native plugins built with that library: the
--- bundled ones (M.native_dir/NAME.so) and the spec fixtures
--- (M.fixtures_dir/NAME.so, from spec/fixtures/native/).
M.build_dir = M.lib_path:match("^(.*)/[^/]+$") or "."
M.native_dir = M.build_dir .. "/plugins-native"
M.fixtures_dir = M.build_dir .. "/fixtures-native"

local function open_lib()
  local f = io.open(M.lib_path, "rb")
  if not f then
    error("plugin_harness: " .. M.lib_path .. " is missing: run `make build/libsluice.so`", 0)
  end
  f:close()
  -- Global: the plugin VMs find the sl_ffi_* functions through ffi.C.
  local lib = ffi.load(M.lib_path, true)
  if lib.sl_test_init(M.root .. "/lua", errbuf, ERRLEN) < 0 then
    error("plugin_harness: " .. ffi.string(errbuf), 0)
  end
  return lib
end

local lib = open_lib()

--- log_level(name): the level of the core's log on stderr ("error",
--- "warn", "info", "debug"); "warn" to begin with, so that plugins'
--- sluice.log.info lines stay out of busted's output.
function M.log_level(name)
  local n = LEVELS[name]
  if n == nil then error("log_level: expected error, warn, info or debug", 2) end
  lib.sl_log_set_level(n)
end
M.log_level("warn")

--- A value that stands for YAML's null in a config table.
M.null = setmetatable({}, { __tostring = function() return "null" end })

-- --- configs --------------------------------------------------------------

local function yaml_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
    return format("\\x%02x", c:byte())
  end) .. '"'
end

-- A Lua value as YAML flow text (JSON-like). Keys are sorted, so a
-- message about "the first bad entry" is stable.
local function to_yaml(v, path)
  local t = type(v)
  if v == M.null then return "null" end
  if t == "string" then return yaml_string(v) end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      error("config" .. path .. ": " .. tostring(v) .. " cannot be written in YAML", 0)
    end
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return format("%d", v) end
    return format("%.17g", v)
  end
  if t ~= "table" then error("config" .. path .. ": a " .. t .. " cannot be written in YAML", 0) end
  local n = #v
  if n > 0 then
    local items = {}
    for i = 1, n do items[i] = to_yaml(v[i], path .. "[" .. i .. "]") end
    return "[" .. concat(items, ", ") .. "]"
  end
  local keys = {}
  for k in pairs(v) do
    if type(k) ~= "string" then
      error("config" .. path .. ": keys must be strings (got a " .. type(k) .. ")", 0)
    end
    keys[#keys + 1] = k
  end
  sort(keys)
  local items = {}
  for i, k in ipairs(keys) do items[i] = yaml_string(k) .. ": " .. to_yaml(v[k], path .. "." .. k) end
  return "{" .. concat(items, ", ") .. "}"
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
end

local function temp_dir()
  local template = "/tmp/sluice-harness-XXXXXX"
  local buf = ffi.new("char[?]", #template + 1, template)
  if ffi.C.mkdtemp(buf) == nil then error("plugin_harness: mkdtemp failed", 0) end
  return ffi.string(buf)
end

local OPTION_KEYS = { priority = true, on_error = true, timeout_ms = true,
                      memory_limit_mb = true, sha256 = true }

-- The sluice.yaml that loads plugin name from dir. Returns the text and
-- the line where a YAML string config starts.
local function config_text(dir, name, kind, config, opts)
  local lines = {
    'listen: ["127.0.0.1:8080"]',
    "upstreams:",
    "  default:",
    '    backends: ["127.0.0.1:9001"]',
    "plugin_paths: [" .. yaml_string(dir) .. "]",
    "plugins:",
    "  - name: " .. yaml_string(name),
    "    kind: " .. kind,
  }
  local keys = {}
  for k in pairs(opts) do
    if k == "shared_dicts" then
      -- top level: { name = size } declares shared dicts for the plugin
      local dicts = {}
      for dname, size in pairs(opts.shared_dicts) do dicts[dname] = { size = size } end
      table.insert(lines, 1, "shared_dicts: " .. to_yaml(dicts, ""))
    elseif not OPTION_KEYS[k] then
      error("unknown option '" .. tostring(k) .. "' (priority, on_error, timeout_ms, "
            .. "memory_limit_mb, sha256, shared_dicts)", 0)
    else
      keys[#keys + 1] = k
    end
  end
  sort(keys)
  for _, k in ipairs(keys) do lines[#lines + 1] = "    " .. k .. ": " .. to_yaml(opts[k], "") end
  local first
  if type(config) == "string" and config:match("^%s*$") then config = nil end
  if type(config) == "string" then
    lines[#lines + 1] = "    config:"
    first = #lines + 1
    for line in (config:gsub("\n$", "") .. "\n"):gmatch("(.-)\r?\n") do
      lines[#lines + 1] = "      " .. line
    end
    if #lines < first then lines[#lines + 1] = "      {}" end
  elseif config ~= nil then
    lines[#lines + 1] = "    config: " .. to_yaml(config, "")
  end
  return concat(lines, "\n") .. "\n", first
end

local function escape_pattern(s)
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

-- Messages name the generated file: point them at the config the spec
-- gave instead (line and column within a YAML string).
local function rewrite(msg, config_path, first)
  local found = false
  msg = msg:gsub(escape_pattern(config_path) .. ":(%d+):(%d+): ", function(l, c)
    l, c = tonumber(l), tonumber(c)
    if first and l >= first then
      found = true
      return format("config:%d:%d: ", l - first + 1, c > 6 and c - 6 or 1)
    end
    return ""
  end)
  if found then   -- libyaml's own "(... at line 9, column 10)"
    msg = msg:gsub("line (%d+), column (%d+)", function(l, c)
      l, c = tonumber(l), tonumber(c)
      if l < first then return nil end
      return format("line %d, column %d", l - first + 1, c > 6 and c - 6 or 1)
    end)
  end
  return msg
end

local Plugin = {}
Plugin.__index = Plugin

-- Loads plugin name of kind ("lua" or "native") from dir. srcdir: the
-- temporary directory of a load_source plugin, left out of its messages
-- (it is gone by then).
local function load_from(dir, name, kind, config, opts, srcdir)
  local tmp = temp_dir()
  local config_path = tmp .. "/sluice.yaml"
  local ok, text, first = pcall(config_text, dir, name, kind, config, opts or {})
  if ok then
    write_file(config_path, text)
    ok, text = pcall(lib.sl_test_plugin_load, config_path, name, errbuf, ERRLEN)
  end
  os.remove(config_path)
  os.remove(tmp)
  if srcdir then
    os.remove(srcdir .. "/" .. name .. ".lua")
    os.remove(srcdir)
  end
  if not ok then error("load: " .. tostring(text), 3) end
  local strip = srcdir and escape_pattern(srcdir .. "/")
  if text == nil then
    local msg = rewrite(ffi.string(errbuf), config_path, first)
    return nil, strip and msg:gsub(strip, "") or msg
  end
  local p = setmetatable({ tp = ffi.gc(text, lib.sl_test_plugin_free), name = name,
                           kind = kind, strip = strip }, Plugin)
  p.phases = {}
  local bits = lib.sl_test_plugin_phases(p.tp)
  for ph, n in pairs(PHASES) do
    if bit.band(bits, bit.lshift(1, n)) ~= 0 then p.phases[ph] = true end
  end
  return p
end

--- load(path, config, opts) -> plugin, or nil and the message: loads the
--- plugin at path (DIR/NAME.lua or DIR/NAME/handler.lua for Lua, DIR/NAME.so
--- for a native plugin; relative to the root) with config, a table
--- (written as YAML; M.null for a null) or the YAML text of the config
--- mapping, nil for none. opts may set the entry's priority, on_error,
--- timeout_ms, memory_limit_mb and sha256, and shared_dicts = { name =
--- size } declares shared dicts (sluice.shared) at the top level. Both kinds load through the
--- proxy's own loader (the entry names `kind:`), and p.kind says which.
--- Messages are the proxy's, with config positions given within a YAML
--- string config ("config:LINE:COL: plugin NAME: config.keys: ...").
function M.load(path, config, opts)
  if type(path) ~= "string" then error("load: bad argument #1 (a path expected)", 2) end
  if path:sub(1, 1) ~= "/" then path = M.root .. "/" .. path end
  local kind = "lua"
  local dir, name = path:match("^(.*)/([^/]+)/handler%.lua$")
  if not dir then dir, name = path:match("^(.*)/([^/]+)%.lua$") end
  if not dir then
    dir, name = path:match("^(.*)/([^/]+)%.so$")
    kind = "native"
  end
  if not dir then
    error("load: " .. path .. ": expected DIR/NAME.lua, DIR/NAME/handler.lua or DIR/NAME.so", 2)
  end
  local p, err = load_from(dir, name, kind, config, opts)   -- not a tail call: error levels
  return p, err
end

--- native_loaded() -> how many distinct native plugin files the library
--- holds loaded now (each is unloaded when its last instance goes), and
--- the directory of its private copies.
function M.native_loaded()
  return tonumber(lib.sl_native_loaded_count()), ffi.string(lib.sl_native_copy_dir())
end

--- load_source(name, source, config, opts) -> plugin, or nil and the
--- message: as load, for plugin code given as text (written to a
--- temporary NAME.lua, removed once loaded; messages call it NAME.lua).
function M.load_source(name, source, config, opts)
  if type(name) ~= "string" or not name:match("^[%w_-]+$") then
    error("load_source: bad argument #1 (a plugin name expected)", 2)
  end
  if type(source) ~= "string" then error("load_source: bad argument #2 (a string expected)", 2) end
  local dir = temp_dir()
  local file = dir .. "/" .. name .. ".lua"
  write_file(file, source)
  local p, err = load_from(dir, name, "lua", config, opts, dir)
  return p, err
end

local Request = {}
Request.__index = Request

local function conn_of(req, fname)
  if getmetatable(req) ~= Request then error(fname .. ": a harness request expected", 3) end
  if req.c == nil then error(fname .. ": the request was freed", 3) end
  return req.c
end

--- p:call(phase, req) -> "continue" | "respond" | "error", message, budget:
--- runs one hook of the plugin for req as the proxy's chain would (a phase
--- the plugin lacks continues). "respond": a local reply is set
--- (req:reply()). "error": the message (with the traceback), and budget is
--- true when the CPU or memory budget killed the hook. The configured
--- on_error is not applied: this is the plugin's own answer.
function Plugin:call(phase, req)
  local n = PHASES[phase]
  if n == nil then error("call: unknown phase '" .. tostring(phase) .. "'", 2) end
  if self.tp == nil then error("call: the plugin was freed", 2) end
  local c = conn_of(req, "call")
  local rc = lib.sl_test_plugin_call(self.tp, n, c, errbuf, ERRLEN, budget_out)
  if rc == MISUSE then error("call: " .. ffi.string(errbuf), 2) end
  local action = ACTIONS[rc] or ("action " .. rc)
  if rc == 0 or rc == 1 then return action end
  local msg = ffi.string(errbuf)
  if self.strip then msg = msg:gsub(self.strip, "") end
  return action, msg, budget_out[0] ~= 0
end

--- p:free(): closes the plugin's VM now rather than at garbage collection
--- (requests it ran on keep it until they are freed).
function Plugin:free()
  if self.tp ~= nil then
    lib.sl_test_plugin_free(ffi.gc(self.tp, nil))
    self.tp = nil
  end
end

-- --- requests -----------------------------------------------------------------

-- The sluice.yaml of a request's own upstreams (opts.upstreams, see
-- M.request), with one catch-all route to opts.upstream.
local function upstreams_config(opts)
  local names = {}
  for name in pairs(opts.upstreams) do names[#names + 1] = name end
  sort(names)
  local route = opts.upstream or (#names == 1 and names[1])
  if type(route) ~= "string" then
    error("request: opts.upstream must name the route's upstream (there are several)", 0)
  end
  local lines = { 'listen: ["127.0.0.1:8080"]', "upstreams:" }
  for _, name in ipairs(names) do
    lines[#lines + 1] = "  " .. yaml_string(name) .. ":"
    lines[#lines + 1] = "    backends:"
    for _, b in ipairs(opts.upstreams[name]) do
      if type(b) == "string" then b = { address = b } end
      lines[#lines + 1] = "      - " .. to_yaml(b, "")
    end
  end
  lines[#lines + 1] = "routes: [{path: /, upstream: " .. yaml_string(route) .. "}]"
  return concat(lines, "\n") .. "\n"
end

--- request(raw, opts) -> req, or nil and the message: raw is the request
--- as the client sends it (the head must be complete). opts.client sets
--- the client address (default 127.0.0.1). opts.upstreams = { NAME = {
--- "host:port" or { address = "host:port", weight = n }, ... }, ... }
--- makes the request on a configuration with those upstreams (for
--- balancer hooks), routed to opts.upstream (needed when there are
--- several); by default there is one, "default", with 127.0.0.1:9001. The
--- message of a refused request starts with the status the proxy would
--- answer with.
function M.request(raw, opts)
  if type(raw) ~= "string" then error("request: bad argument #1 (a string expected)", 2) end
  opts = opts or {}
  local c
  if opts.upstreams ~= nil then
    local ok, text = pcall(upstreams_config, opts)
    if not ok then error(text, 2) end
    local tmp = temp_dir()
    local path = tmp .. "/sluice.yaml"
    write_file(path, text)
    c = lib.sl_test_request_new_on(path, raw, #raw, opts.client, errbuf, ERRLEN)
    os.remove(path)
    os.remove(tmp)
  else
    c = lib.sl_test_request_new(raw, #raw, opts.client, errbuf, ERRLEN)
  end
  if c == nil then return nil, ffi.string(errbuf) end
  return setmetatable({ c = ffi.gc(c, lib.sl_test_request_free) }, Request)
end

--- req:balancer() -> upstream, backend: where the request goes after its
--- balancer hooks: the upstream's name, and the backend a plugin pinned
--- (sluice.balancer.set_backend) or nil when the upstream's round robin
--- picks.
function Request:balancer()
  local up = ffi.new("const char *[1]")
  local be = ffi.new("const char *[1]")
  lib.sl_test_balancer(conn_of(self, "balancer"), up, be)
  return ffi.string(up[0]), be[0] ~= nil and ffi.string(be[0]) or nil
end

--- req:free(): ends the request now (the plugins it ran on drop its ctx).
function Request:free()
  if self.c ~= nil then
    lib.sl_test_request_free(ffi.gc(self.c, nil))
    self.c = nil
  end
end

--- req:id() -> the request id (16 hex digits).
function Request:id()
  lib.sl_api_request_id(conn_of(self, "id"), pp, pn)
  return ffi.string(pp[0], pn[0])
end

--- req:headers(side) -> { { name, value }, ... }: the fields of side
--- ("request", what goes upstream, by default; or "response") in order,
--- as plugins left them.
function Request:headers(side)
  local c = conn_of(self, "headers")
  local s = SIDES[side or "request"]
  if s == nil then error("headers: side must be 'request' or 'response'", 2) end
  local list = {}
  for i = 0, tonumber(lib.sl_api_header_count(c, s)) - 1 do
    lib.sl_api_header_at(c, s, i, pp, pn, pp2, pn2)
    list[#list + 1] = { ffi.string(pp[0], pn[0]), ffi.string(pp2[0], pn2[0]) }
  end
  return list
end

-- Fields as a map: lowercase name -> value, repeated fields joined by ", ".
local function field_map(list)
  local map = {}
  for _, f in ipairs(list) do
    local k = f[1]:lower()
    map[k] = map[k] and (map[k] .. ", " .. f[2]) or f[2]
  end
  return map
end

--- req:ctx(key) -> the value of key in the shared per-request space
--- (sluice.ctx), or nil. req:set_ctx(key, value) sets it, as a plugin that
--- ran before would have (value nil removes it).
function Request:ctx(key)
  if lib.sl_api_ctx_get(conn_of(self, "ctx"), key, #key, pp, pn) ~= 0 then return nil end
  return ffi.string(pp[0], pn[0])
end

function Request:set_ctx(key, value)
  local c = conn_of(self, "set_ctx")
  local rc = lib.sl_api_ctx_set(c, key, #key, value, value and #value or 0)
  if rc < 0 then error("set_ctx: error " .. rc, 2) end
end

--- req:upstream_head() -> the request head the origin would receive, or
--- nil and a message when the request was answered locally. The first call
--- sends it: the request side is closed to plugins from then on.
function Request:upstream_head()
  local p = lib.sl_test_upstream_head(conn_of(self, "upstream_head"), pn)
  if p == nil then
    local status = self:reply()
    if status then return nil, "the request was answered locally (" .. status .. ")" end
    return nil, "out of memory"
  end
  return ffi.string(p, pn[0])
end

local function raw_fields(headers)
  if headers == nil then return "" end
  if type(headers) == "string" then return headers end
  local lines = {}
  local function add(name, value)
    if type(value) == "table" then
      for _, v in ipairs(value) do add(name, v) end
    else
      lines[#lines + 1] = name .. ": " .. tostring(value) .. "\r\n"
    end
  end
  if #headers > 0 then
    for _, f in ipairs(headers) do add(f[1], f[2]) end
  else
    local names = {}
    for k in pairs(headers) do names[#names + 1] = k end
    sort(names)
    for _, k in ipairs(names) do add(k, headers[k]) end
  end
  return concat(lines)
end

--- req:respond_from_origin(status, headers, body): the origin answers
--- with status and headers: a map name -> value (or a list of values), a
--- list of { name, value }, or raw field lines ("Name: v\r\n..."), and
--- the body (a string, optional: what response_body gets). The request
--- head goes upstream first if it had not. Raises when the origin cannot
--- answer (a local reply is set, it answered already, a malformed head).
function Request:respond_from_origin(status, headers, body)
  local c = conn_of(self, "respond_from_origin")
  if body ~= nil and type(body) ~= "string" then
    error("respond_from_origin: bad argument #3 (a string expected)", 2)
  end
  local raw = raw_fields(headers)
  if lib.sl_test_response_begin(c, status, raw, #raw, errbuf, ERRLEN) < 0 then
    error("respond_from_origin: " .. ffi.string(errbuf), 2)
  end
  if body ~= nil and lib.sl_test_origin_body(c, body, #body, errbuf, ERRLEN) < 0 then
    error("respond_from_origin: " .. ffi.string(errbuf), 2)
  end
end

--- req:body(side) -> the body as it leaves the proxy on side: "request"
--- (to the origin; the default) or "response" (to the client). Once that
--- side's body phase ran, the body it left (request_body's first call
--- buffers the client's body, response_body's the origin's or the local
--- reply's); before, the client's body (de-chunked) or the origin's.
function Request:body(side)
  local c = conn_of(self, "body")
  local s = SIDES[side or "request"]
  if s == nil then error("body: side must be 'request' or 'response'", 2) end
  local p = lib.sl_test_body(c, s, pn)
  return ffi.string(p, pn[0])
end

--- req:response_head() -> the response head the client would receive for
--- the origin's response, or nil and a message. The first call sends it:
--- the response side is closed to plugins from then on.
function Request:response_head()
  local p = lib.sl_test_response_head(conn_of(self, "response_head"), pn)
  if p == nil then return nil, "no response from the origin (respond_from_origin)" end
  return ffi.string(p, pn[0])
end

--- req:reply() -> status, headers, body of the local reply a plugin set,
--- or nil. headers maps lowercase names to values (repeated fields joined
--- by ", "); the proxy's own fields (Server, Date, Content-Length) are not
--- included. After response_headers ran on the reply, status is the one
--- that phase left.
function Request:reply()
  local status = lib.sl_test_reply(conn_of(self, "reply"), pp, pn)
  if status == 0 then return nil end
  local body = ffi.string(pp[0], pn[0])
  return status, field_map(self:headers("response")), body
end

--- parse_head(text) -> { line = start line, status = number or nil,
--- headers = map as req:reply's, fields = list as req:headers' }.
function M.parse_head(text)
  local line, rest = text:match("^(.-)\r\n(.*)$")
  if not line then error("parse_head: no start line", 2) end
  local fields = {}
  for name, value in rest:gmatch("([^:\r\n]+):[ \t]*([^\r\n]*)\r\n") do
    fields[#fields + 1] = { name, value }
  end
  return {
    line = line,
    status = tonumber(line:match("^HTTP/%d%.%d (%d%d%d)")),
    headers = field_map(fields),
    fields = fields,
  }
end

M.Plugin, M.Request = Plugin, Request

return M
