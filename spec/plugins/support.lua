-- spec/plugins/support.lua: what the plugin integration specs
-- (spec/plugins/*/integration_spec.lua) share. Each runs the real proxy, with
-- the repository's plugins-lua, in front of the bundled origin, whose /echo
-- answers with the raw request it received.
--
--   local h = require "spec.helpers"
--   local S = require "spec.plugins.support"

local h = require "spec.helpers"
-- busted's assert (with its matchers), also when required from a module.
local assert = require "luassert"

local S = {}

local PLUGINS = os.getenv("PWD") .. "/plugins-lua"

--- S.config(port, origin_port, plugins) -> the proxy's configuration: one
-- worker, the origin as the only upstream, the repository's plugins-lua, then
-- `plugins` (the YAML lines of the plugins list). The plugins list starts on
-- line 8.
function S.config(port, origin_port, plugins)
  return table.concat({
    "workers: 1",
    "listen: [127.0.0.1:" .. port .. "]",
    "upstreams:",
    "  app:",
    "    backends: [127.0.0.1:" .. origin_port .. "]",
    "plugin_paths: [" .. PLUGINS .. "]",
    "plugins:",
    plugins,
  }, "\n") .. "\n"
end

--- S.start(origin, plugins) -> a proxy (h.start_proxy) on a free port, with
-- S.config in front of `origin`.
function S.start(origin, plugins)
  local port = h.free_port()
  return h.start_proxy { config = S.config(port, origin.port, plugins), port = port }
end

--- S.check_bad(plugins) -> path, t_code, t_out, s_code, s_out
-- Checks the configuration S.config makes of `plugins` with `sluice -t -c`
-- and by starting sluice on it; returns the file, and per mode the exit code
-- and the output.
function S.check_bad(plugins)
  local path = h.write_tmp(S.config(h.free_port(), 9, plugins))
  local t_code, t_out = h.run(h.quote(h.bin) .. " -t -c " .. h.quote(path))
  local s_code, s_out = h.run("timeout 10 " .. h.quote(h.bin) .. " -c " .. h.quote(path))
  return path, t_code, t_out, s_code, s_out
end

--- S.assert_config_error(plugins, err)
-- Asserts that sluice refuses the configuration of `plugins` (S.check_bad),
-- both with -t and at start (a failure exit, not the timeout's 124), and that
-- each output holds "FILE:err". An err starting with a digit carries its own
-- "line:col: " and is matched literally; any other err must follow
-- "FILE:LINE:COL: ".
function S.assert_config_error(plugins, err)
  local path, t_code, t_out, s_code, s_out = S.check_bad(plugins)
  local plain = err:find("^%d") ~= nil
  local want = plain and (path .. ":" .. err)
    or (path:gsub("%p", "%%%0") .. ":%d+:%d+: " .. err:gsub("%p", "%%%0"))
  assert.are_not.equal(0, t_code)
  assert.truthy(t_out:find(want, 1, plain), t_out)
  assert.are_not.equal(0, s_code)
  assert.are_not.equal(124, s_code)
  assert.truthy(s_out:find(want, 1, plain), s_out)
end

--- S.parse_request(raw) -> { line, headers, fields }
-- The request line and header fields of a raw request (/echo's body):
-- headers maps a lower-case name to its values; fields keeps them in order
-- ("Name: value").
function S.parse_request(raw)
  local head = raw:match("^(.-)\r\n\r\n") or raw
  local req = { headers = {}, fields = {} }
  for line in (head .. "\r\n"):gmatch("(.-)\r\n") do
    if not req.line then
      req.line = line
    else
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      local k = name:lower()
      req.headers[k] = req.headers[k] or {}
      table.insert(req.headers[k], value)
      req.fields[#req.fields + 1] = name .. ": " .. value
    end
  end
  return req
end

--- S.sender(prefix) -> send(proxy, method, target, hdrs, body) -> resp, id
-- A function that sends `method target` to the proxy with a unique X-Case
-- (prefix .. "-" .. a count of its own) first, then the fields in hdrs (a list
-- of pairs), and `body`; it returns the response and the case id.
function S.sender(prefix)
  local seq = 0
  return function(proxy, method, target, hdrs, body)
    seq = seq + 1
    local id = prefix .. "-" .. seq
    local list = { { "X-Case", id } }
    for _, p in ipairs(hdrs or {}) do list[#list + 1] = p end
    local resp = assert(h.request(proxy.port, h.build_request(method, target, list, body)))
    return resp, id
  end
end

--- S.origin_has(origin, id) -> whether the origin has logged a request of
-- case id (one carrying "X-Case: id"), as of now.
function S.origin_has(origin, id)
  for _, raw in ipairs(origin:requests()) do
    if raw:find("\r\nX-Case: " .. id .. "\r\n", 1, true) then return true end
  end
  return false
end

--- S.origin_got_before(origin, id, sentinel) -> whether the origin logged
-- the request of case id. The request of case `sentinel`, sent after it (and
-- answered by the origin), is waited for first, so false means the origin
-- never got it.
function S.origin_got_before(origin, id, sentinel)
  h.wait_until(function() return S.origin_has(origin, sentinel) end)
  return S.origin_has(origin, id)
end

return S
