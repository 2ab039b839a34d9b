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
  .. "created (%d+), closed (%d+); reloads ok (%d+), failed (%d+), unchanged (%d+)"

local function parse_status(line)
  local g, live, open, created, closed, ok, failed, same = line:match(STATUS)
  if not g then return nil end
  return { generation = tonumber(g), live = tonumber(live), vms_open = tonumber(open),
           vms_created = tonumber(created), vms_closed = tonumber(closed), ok = tonumber(ok),
           failed = tonumber(failed), unchanged = tonumber(same) }
end

--- R.last_status(text) -> the last status line in text, parsed:
-- { generation, live, vms_open, vms_created, vms_closed, ok, failed,
-- unchanged }, or nil.
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

return R
