-- spec/e2e/reload_support.lua: what the reload specs share
-- (spec/e2e/reload_spec.lua, reload_soak_spec.lua, watch_spec.lua): files
-- rewritten in place, counts of log lines, the SIGUSR1 status line.
--
--   local R = require "spec.e2e.reload_support"

local h = require "spec.helpers"
-- busted's assert (with its matchers), also when required from a module.
local assert = require "luassert"

local R = {}

--- R.write(path, content): replaces the file's content in place (open with
-- truncation, one write, close), as `echo > file` does.
function R.write(path, content)
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
end

--- R.tmpdir() -> a new empty directory; R.rmdir(dir) removes it and what
-- it holds.
function R.tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. h.quote(dir)))
  return dir
end

function R.rmdir(dir)
  if dir and dir:match("^/tmp/") then os.execute("rm -rf " .. h.quote(dir)) end
end

--- R.count(text, plain) -> how many times the plain string occurs in text.
function R.count(text, plain)
  local n, i = 0, 1
  while true do
    local s, e = text:find(plain, i, true)
    if not s then return n end
    n, i = n + 1, e + 1
  end
end

--- R.outcomes(proxy) -> reloads published, failed, found unchanged so far
-- (counted in the log).
function R.outcomes(proxy)
  local log = proxy:log()
  return R.count(log, "sluice: reloaded configuration "), R.count(log, "sluice: reload failed: "),
    R.count(log, " and its plugins are unchanged; keeping generation ")
end

--- R.reload(proxy, content) -> "ok", "failed" or "unchanged": writes
-- content to the proxy's configuration file (unless nil), sends SIGHUP and
-- waits for the outcome in the log.
function R.reload(proxy, content)
  local ok0, bad0, same0 = R.outcomes(proxy)
  if content then R.write(proxy.config_path, content) end
  proxy:signal("HUP")
  local res = h.wait_until(function()
    local ok, bad, same = R.outcomes(proxy)
    if ok > ok0 then return "ok" end
    if bad > bad0 then return "failed" end
    if same > same0 then return "unchanged" end
  end, 10)
  assert(res, "no reload outcome in the log:\n" .. proxy:log())
  return res
end

local STATUS = "sluice: status: generation (%d+); generations live (%d+); Lua VMs open (%d+), "
  .. "created (%d+), closed (%d+);"
local NATIVE = "; native copies open (%d+), loaded (%d+), unloaded (%d+);"
local RELOADS = "; reloads ok (%d+), failed (%d+), unchanged (%d+)"

local function parse_status(line)
  local g, live, open, created, closed = line:match(STATUS)
  local ok, failed, same = line:match(RELOADS)
  if not g or not ok then return nil end
  local nopen, nloaded, nunloaded = line:match(NATIVE)
  return { generation = tonumber(g), live = tonumber(live), vms_open = tonumber(open),
           vms_created = tonumber(created), vms_closed = tonumber(closed),
           native_open = tonumber(nopen), native_loaded = tonumber(nloaded),
           native_unloaded = tonumber(nunloaded), ok = tonumber(ok),
           failed = tonumber(failed), unchanged = tonumber(same) }
end

--- R.last_status(text) -> the last status line in text, parsed:
-- { generation, live, vms_open, vms_created, vms_closed, native_open,
-- native_loaded, native_unloaded, ok, failed, unchanged }, or nil.
function R.last_status(text)
  local last
  for line in text:gmatch("[^\n]+") do
    last = parse_status(line) or last
  end
  return last
end

--- R.status(proxy) -> a fresh status (SIGUSR1, then the line it logs).
function R.status(proxy)
  local n0 = R.count(proxy:log(), "sluice: status: ")
  proxy:signal("USR1")
  assert(h.wait_until(function() return R.count(proxy:log(), "sluice: status: ") > n0 end),
    "no status line after SIGUSR1:\n" .. proxy:log())
  return assert(R.last_status(proxy:log()))
end

--- R.rss_kb(pid) -> VmRSS of the process in KiB, from /proc.
function R.rss_kb(pid)
  local s = h.read_file("/proc/" .. pid .. "/status") or ""
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

--- R.esc(s) -> s with Lua pattern magic characters escaped.
function R.esc(s) return (s:gsub("%p", "%%%0")) end

--- R.sh(cmd): runs a shell command, failing with its output unless it
-- exits 0.
function R.sh(cmd)
  local code, out = h.run(cmd)
  assert(code == 0, cmd .. ": " .. out)
end

--- R.fixtures_native() -> the directory of the built native fixtures:
-- fixtures-native/ next to $SLUICE_LIB (make puts both in $(BUILD)).
function R.fixtures_native()
  local root = os.getenv("PWD")
  local build = (os.getenv("SLUICE_LIB") or "build/libsluice.so"):match("^(.*)/[^/]+$") or "build"
  if build:sub(1, 1) ~= "/" then build = root .. "/" .. build end
  return build .. "/fixtures-native"
end

--- R.install(src, dst): copies src over dst the way a build or an editor
-- saves: into a hidden temporary file next to dst, renamed over it.
function R.install(src, dst)
  local dir, base = dst:match("^(.*)/([^/]+)$")
  local tmp = dir .. "/." .. base .. ".tmp"
  R.sh("cp " .. h.quote(src) .. " " .. h.quote(tmp) .. " && mv -f " .. h.quote(tmp) .. " "
    .. h.quote(dst))
end

--- R.sha256(path) -> the file's SHA-256 in hex.
function R.sha256(path)
  local code, out = h.run("sha256sum " .. h.quote(path))
  assert(code == 0, out)
  return (out:match("^(%x+)"))
end

--- R.mapped(pid, needle) -> how many distinct files whose path contains
-- needle (plain) the process has mapped (/proc/PID/maps; an unlinked
-- file shows with " (deleted)"), and their paths.
function R.mapped(pid, needle)
  local seen, paths = {}, {}
  for line in (h.read_file("/proc/" .. pid .. "/maps") or ""):gmatch("[^\n]+") do
    local path = line:match("^%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+(/.*)$")
    if path and path:find(needle, 1, true) and not seen[path] then
      seen[path] = true
      paths[#paths + 1] = path
    end
  end
  return #paths, paths
end


--- R.traffic(port, served_by) -> t: the soak specs' load. t.round() sends
-- one request on each of two keep-alive connections and one on a fresh
-- connection, checking each with served_by; t.settle() lets both workers'
-- ticks run and sends four rounds, so every retired generation can go;
-- t.served counts the responses; t.close() closes the connections.
function R.traffic(port, served_by)
  local t = { served = 0, conns = { assert(h.connect(port)), assert(h.connect(port)) } }
  local function request(conn, path)
    assert(conn:send(h.build_request("GET", path)))
    local resp, err = conn:read_response()
    assert(resp, "request failed: " .. tostring(err))
    assert.is_falsy(resp.closed)
    assert(served_by(resp))
    t.served = t.served + 1
  end
  function t.round()
    for i, c in ipairs(t.conns) do request(c, "/k/" .. i) end
    assert(served_by(assert(h.get(port, "/fresh"))))
  end
  function t.settle()
    h.sleep(1.2)
    for _ = 1, 4 do t.round() end
    h.sleep(0.3)
  end
  function t.close()
    for _, c in ipairs(t.conns) do c:close() end
  end
  return t
end

return R
