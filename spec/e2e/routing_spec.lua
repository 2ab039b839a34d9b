-- Routing: host tiers (exact, wildcard, any), longest path prefix, segment
-- boundaries, Host normalisation, absolute-form targets and 404. Each
-- upstream is one origin with its own name; every request carries a unique
-- X-Case, so a case checks which origin answered and that only that origin
-- received the request.
local h = require "spec.helpers"

-- Upstream name -> origin name. Routes are listed least specific first, so
-- file order would pick the wrong one every time.
local UPSTREAMS = { "any", "anydeep", "wild", "deepwild", "exact", "api", "apiv1" }

local CONFIG = [[
workers: 1
listen: ["127.0.0.1:%d"]
routes:
  - {path: /shared, upstream: any}
  - {path: /shared/deeper, upstream: anydeep}
  - {host: "*.example.com", path: /shared, upstream: wild}
  - {host: "*.b.example.com", path: /shared, upstream: deepwild}
  - {host: a.example.com, path: /shared, upstream: exact}
  - {path: /api, upstream: api}
  - {path: /api/v1/, upstream: apiv1}
upstreams:
%s]]

describe("routing", function()
  local origins, proxy = {}, nil
  local seq = 0

  lazy_setup(function()
    local ups = {}
    for _, name in ipairs(UPSTREAMS) do
      origins[name] = h.start_origin { name = name }
      ups[#ups + 1] = string.format("  %s:\n    backends: [127.0.0.1:%d]\n", name, origins[name].port)
    end
    local port = h.free_port()
    proxy = h.start_proxy { config = string.format(CONFIG, port, table.concat(ups)) }
  end)

  lazy_teardown(function()
    if proxy then proxy:stop() end
    for _, o in pairs(origins) do o:stop() end
  end)

  -- Which origins logged a request carrying "X-Case: id" (names, sorted).
  local function receivers(id)
    local needle = "\r\nX-Case: " .. id .. "\r\n"
    local got = {}
    for name, o in pairs(origins) do
      for _, raw in ipairs(o:requests()) do
        if raw:find(needle, 1, true) then got[#got + 1] = name end
      end
    end
    table.sort(got)
    return got
  end

  -- Sends `target` with Host `host` (nil: no Host field) and a unique X-Case;
  -- returns the response and the case id.
  local function send(target, host)
    seq = seq + 1
    local id = "route-" .. seq
    local lines = { "GET " .. target .. " HTTP/1.1" }
    if host then lines[#lines + 1] = "Host: " .. host end
    lines[#lines + 1] = "X-Case: " .. id
    local resp = assert(h.request(proxy.port, table.concat(lines, "\r\n") .. "\r\n\r\n"))
    return resp, id
  end

  local function expect_routed(target, host, want)
    local resp, id = send(target, host)
    assert.equals(200, resp.status)
    assert.equals(want, resp.headers["x-origin-name"])
    assert.equals("hello from " .. want .. "\n", resp.body)
    local got = h.wait_until(function()
      local r = receivers(id)
      return #r > 0 and r
    end)
    assert.same({ want }, got)
    local raw
    for _, r in ipairs(origins[want]:requests()) do
      if r:find("\r\nX-Case: " .. id .. "\r\n", 1, true) then raw = r end
    end
    return raw
  end

  describe("by host", function()
    local cases = {
      { host = "a.example.com", want = "exact", why = "an exact host beats a wildcard and any host" },
      { host = "x.example.com", want = "wild", why = "a wildcard beats any host" },
      { host = "x.b.example.com", want = "deepwild", why = "a longer wildcard beats a shorter one" },
      { host = "b.example.com", want = "wild", why = "a wildcard needs a label before its suffix" },
      { host = "example.com", want = "any", why = "a wildcard does not match its bare suffix" },
      { host = "other.test", want = "any", why = "any host takes the rest" },
      { host = "A.Example.COM", want = "exact", why = "host names compare case-insensitively" },
      { host = "a.example.com:8080", want = "exact", why = "the port is not part of the name" },
      { host = "X.EXAMPLE.COM:80", want = "wild", why = "uppercase and a port together still match a wildcard" },
    }
    for _, case in ipairs(cases) do
      it("sends Host " .. case.host .. " to " .. case.want .. ": " .. case.why, function()
        local raw = expect_routed("/shared/x", case.host, case.want)
        -- the origin sees the client's Host as sent
        assert.matches("\r\nHost: " .. case.host:gsub("%p", "%%%0") .. "\r\n", raw)
      end)
    end

    it("prefers a more specific host over a longer path", function()
      expect_routed("/shared/deeper/x", "a.example.com", "exact")
      expect_routed("/shared/deeper/x", "other.test", "anydeep")
    end)
  end)

  describe("by path", function()
    local cases = {
      { target = "/api", want = "api" },
      { target = "/api/x", want = "api" },
      { target = "/api?q=1", want = "api" },
      { target = "/api/v1/", want = "apiv1" },
      { target = "/api/v1/users", want = "apiv1" },
      { target = "/api/v1", want = "api", why = "a prefix ending in / needs that /" },
      { target = "/api/v1x", want = "api" },
    }
    for _, case in ipairs(cases) do
      it("sends " .. case.target .. " to " .. case.want .. " (longest matching prefix"
        .. (case.why and ("; " .. case.why) or "") .. ")", function()
        local raw = expect_routed(case.target, "other.test", case.want)
        assert.equals("GET " .. case.target .. " HTTP/1.1\r\n", raw:match("^[^\n]*\n"))
      end)
    end
  end)

  it("routes an absolute-form target by its authority, forwarding origin-form", function()
    local raw = expect_routed("http://a.example.com/shared/abs?q=1", "other.test", "exact")
    assert.equals("GET /shared/abs?q=1 HTTP/1.1\r\n", raw:match("^[^\n]*\n"))
    assert.matches("\r\nHost: a%.example%.com\r\n", raw)
    assert.is_nil(raw:find("\r\nHost: other.test\r\n", 1, true))
  end)

  local unrouted = {
    { target = "/apix", host = "other.test", why = "/api does not match /apix" },
    { target = "/", host = "a.example.com", why = "no route covers /" },
    { target = "/sharedx", host = "a.example.com", why = "/shared does not match /sharedx" },
  }
  for _, case in ipairs(unrouted) do
    it("answers 404 and forwards nothing when no route matches (" .. case.why .. ")", function()
      local resp, id = send(case.target, case.host)
      assert.equals(404, resp.status)
      assert.is_nil(resp.headers["x-origin-name"])
      -- a request routed anyway would be logged by now: the 404 came after it
      h.sleep(0.2)
      assert.same({}, receivers(id))
    end)
  end
end)
