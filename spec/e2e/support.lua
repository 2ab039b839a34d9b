-- spec/e2e/support.lua: checks the end-to-end specs share for requests that
-- sluice refuses itself (spec/e2e/limits_spec.lua, spec/e2e/smuggling_spec.lua).
--
--   local E = require "spec.e2e.support"

local h = require "spec.helpers"
-- busted's assert (with its matchers), also when required from a module.
local assert = require "luassert"

local E = {}

--- E.expect_refusal(conn, status, timeout) -> resp
-- Reads one response on conn (waiting up to `timeout`, default h.timeout)
-- and checks it is `status` with Connection: close, followed by the close
-- with no byte after the response. Closes our side too, or a lingering
-- proxy would hold up its own stop.
function E.expect_refusal(conn, status, timeout)
  local resp, err, partial = conn:read_response { timeout = timeout }
  assert(resp, "no complete response (" .. tostring(err) .. "), got: "
    .. tostring(partial and partial.raw or conn.buf))
  assert.equals(status, resp.status)
  assert.equals("close", (resp.headers.connection or ""):lower())
  local rest, rerr = conn:read_all(2)
  assert(rest, "the connection stayed open after the " .. status .. " (" .. tostring(rerr) .. ")")
  assert.equals("", rest)
  conn:close()
  return resp
end

--- E.origin_record(proxy, origin) -> { requests, partials, connections }
-- What the origin got, read once the proxy is gone: stopping the proxy
-- closes every upstream connection, so bytes it forwarded without completing
-- a request are logged as a partial instead of sitting in an open socket.
function E.origin_record(proxy, origin)
  proxy:stop()
  h.sleep(0.2)
  return {
    requests = origin:requests(),
    partials = origin:partials(),
    connections = origin:connections(),
  }
end

return E
