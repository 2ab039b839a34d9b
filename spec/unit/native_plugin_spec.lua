-- spec/unit/native_plugin_spec.lua: the native plugin kind (src/plugin_native.c)
-- through spec/plugin_harness.lua: hooks, actions, per-request and per-worker
-- state, the ctx shared with Lua plugins, ABI minors, refusals at load, and
-- the private copies named by SHA-256. The fixture plugins come from
-- spec/fixtures/native/ (built by `make` into the build's fixtures-native/).

local harness = require "spec.plugin_harness"

local FIX = harness.fixtures_dir
local GET = "GET /a HTTP/1.1\r\nHost: a.example\r\n\r\n"

local function probe(config)
  return assert(harness.load(FIX .. "/probe.so", config))
end

local function request()
  return assert(harness.request(GET))
end

local function sha256_of(path)
  local f = assert(io.popen("sha256sum '" .. path .. "'"))
  local out = f:read("*a")
  f:close()
  return out:match("^(%x+)")
end

describe("a native plugin", function()
  describe("runs its hooks", function()
    it("changing the request, with its state kept between the hooks of a request", function()
      local p, req = probe(), request()
      assert.same({ request_headers = true, response_headers = true }, p.phases)
      assert.equal("continue", p:call("request_headers", req))
      assert.equal("continue", p:call("request_headers", req))
      local head = harness.parse_head(req:upstream_head())
      assert.equal("2", head.headers["x-probe-calls"])
      req:respond_from_origin(204)
      assert.equal("continue", p:call("response_headers", req))
      local stats = harness.parse_head(req:response_head()).headers["x-probe-stats"]
      assert.matches("calls=2", stats)
    end)

    it("freeing the request's state when the request ends", function()
      local p = probe()
      local first = request()
      p:call("request_headers", first)
      local before = tonumber(harness.parse_head((function()
        local r = request()
        r:respond_from_origin(204)
        p:call("response_headers", r)
        return r:response_head()
      end)()).headers["x-probe-stats"]:match("freed=(%d+)"))
      first:free()
      local r = request()
      r:respond_from_origin(204)
      p:call("response_headers", r)
      local stats = harness.parse_head(r:response_head()).headers["x-probe-stats"]
      assert.equal(before + 1, tonumber(stats:match("freed=(%d+)")))
      assert.matches("calls=0", stats)      -- a new request starts without state
    end)

    it("sharing the per-request ctx with Lua plugins, both ways", function()
      local lua = assert(harness.load_source("reader", [[
        local sluice = require "sluice"
        return { name = "reader", priority = 1,
                 request_headers = function()
                   sluice.request.set_header("X-Lua-Saw", sluice.ctx.get("probe.out") or "nothing")
                 end }
      ]]))
      local p, req = probe(), request()
      req:set_ctx("probe.in", "from-lua")
      assert.equal("continue", p:call("request_headers", req))
      assert.equal("continue", lua:call("request_headers", req))
      local head = harness.parse_head(req:upstream_head())
      assert.equal("from-lua", head.headers["x-probe-ctx"])
      assert.equal("from-native", head.headers["x-lua-saw"])
    end)

    it("answering locally with respond", function()
      local p, req = probe({ mode = "respond" }), request()
      assert.equal("respond", p:call("request_headers", req))
      local status, headers, body = req:reply()
      assert.equal(401, status)
      assert.equal("text/plain", headers["content-type"])
      assert.equal("no entry\n", body)
    end)
  end)

  describe("without worker_init keeps its request's state", function()
    local function keeper(name, config)
      return assert(harness.load(FIX .. "/" .. name .. ".so", config))
    end

    -- X-NAME-Stats of a fresh request's response hook: "freed=M calls=N".
    local function stats_of(p, name)
      local r = request()
      r:respond_from_origin(204)
      assert.equal("continue", p:call("response_headers", r))
      local field = "x-" .. (name or "keeper") .. "-stats"
      local stats = harness.parse_head(r:response_head()).headers[field]
      r:free()
      return tonumber(stats:match("freed=(%d+)")), tonumber(stats:match("calls=(%d+)"))
    end

    before_each(function()
      collectgarbage()          -- earlier tests' requests end now, not amid these
    end)

    it("between the hooks of a request, freed exactly once at its end", function()
      local p = keeper("keeper")
      local freed = stats_of(p)
      local req = request()
      assert.equal("continue", p:call("request_headers", req))
      assert.equal("continue", p:call("request_headers", req))
      assert.equal("2", harness.parse_head(req:upstream_head()).headers["x-keeper-calls"])
      req:respond_from_origin(204)
      assert.equal("continue", p:call("response_headers", req))
      assert.equal("freed=" .. freed .. " calls=2",
                   harness.parse_head(req:response_head()).headers["x-keeper-stats"])
      req:free()
      local now, calls = stats_of(p)
      assert.equal(freed + 1, now)
      assert.equal(0, calls)    -- a new request starts without state
    end)

    it("set by a hook that fails, freed with the request", function()
      local p = keeper("keeper", { mode = "error" })
      local freed = stats_of(p)
      local req = request()
      local action, err = p:call("request_headers", req)
      assert.equal("error", action)
      assert.matches("^keeper: told to fail$", err)
      req:respond_from_origin(204)
      p:call("response_headers", req)
      assert.matches("calls=1$", harness.parse_head(req:response_head()).headers["x-keeper-stats"])
      req:free()
      assert.equal(freed + 1, (stats_of(p)))
    end)

    it("until the hook lets go of it, leaving nothing to free", function()
      local p = keeper("keeper", { mode = "drop" })
      local freed = stats_of(p)
      local req = request()
      assert.equal("continue", p:call("request_headers", req))
      req:respond_from_origin(204)
      p:call("response_headers", req)
      assert.matches("calls=0$", harness.parse_head(req:response_head()).headers["x-keeper-stats"])
      req:free()
      assert.equal(freed, (stats_of(p)))
    end)

    it("in the request's arena, without request_free", function()
      local p = keeper("keeper-arena")
      local req = request()
      for _ = 1, 3 do assert.equal("continue", p:call("request_headers", req)) end
      assert.equal("3", harness.parse_head(req:upstream_head()).headers["x-keeper-arena-calls"])
      req:respond_from_origin(204)
      assert.equal("continue", p:call("response_headers", req))
      assert.equal("freed=0 calls=3",
                   harness.parse_head(req:response_head()).headers["x-keeper-arena-stats"])
      req:free()
      assert.same({ 0, 0 }, { stats_of(p, "keeper-arena") })
    end)

    it("apart from another plugin's state on the same request", function()
      local a, b = keeper("keeper"), keeper("keeper-arena")
      local req = request()
      assert.equal("continue", a:call("request_headers", req))
      assert.equal("continue", b:call("request_headers", req))
      assert.equal("continue", b:call("request_headers", req))
      req:respond_from_origin(204)
      assert.equal("continue", a:call("response_headers", req))
      assert.equal("continue", b:call("response_headers", req))
      local up = harness.parse_head(req:upstream_head()).headers
      assert.same({ "1", "2" }, { up["x-keeper-calls"], up["x-keeper-arena-calls"] })
      local headers = harness.parse_head(req:response_head()).headers
      assert.matches("calls=1$", headers["x-keeper-stats"])
      assert.matches("calls=2$", headers["x-keeper-arena-stats"])
      req:free()
    end)
  end)

  describe("fails a hook", function()
    local cases = {
      { mode = "error", message = "^probe: told to fail$" },
      { mode = "error-silent", message = "^the hook returned SLUICE_ERROR$" },
      { mode = "respond-no-reply", message = "SLUICE_RESPOND without a local reply" },
      { mode = "bad-action", message = "^the hook returned 42, not a sluice_action$" },
    }
    for _, c in ipairs(cases) do
      it("that " .. c.mode:gsub("-", " ") .. ", with its message", function()
        local p, req = probe({ mode = c.mode }), request()
        local action, err, budget = p:call("request_headers", req)
        assert.equal("error", action)
        assert.matches(c.message, err)
        assert.is_false(budget)
      end)
    end
  end)

  describe("keeps the ABI's compatibility promise", function()
    it("loading an older minor's shorter descriptor, reading nothing past its size", function()
      local p = assert(harness.load(FIX .. "/old-minor.so"))
      assert.same({ request_headers = true }, p.phases)
      local req = request()
      assert.equal("continue", p:call("request_headers", req))
      assert.equal("yes", harness.parse_head(req:upstream_head()).headers["x-old-minor"])
    end)

    it("loading a newer minor's longer descriptor, which sees the host table's size", function()
      local p = assert(harness.load(FIX .. "/new-minor.so"))
      local req = request()
      assert.equal("continue", p:call("request_headers", req))
      assert.equal("has-dicts", harness.parse_head(req:upstream_head()).headers["x-new-minor"])
    end)
  end)

  describe("is refused at load", function()
    local cases = {
      { file = "no-entry", message = "no%-entry%.so: no sluice_plugin_init function: not a sluice native plugin" },
      { file = "abi-major", message = "abi%-major%.so: built for sluice plugin ABI 2%.3, this sluice has ABI 1%.%d+: rebuild it" },
      { file = "refuse", message = "refuse%.so: sluice_plugin_init refused this sluice %(plugin ABI 1%.%d+%)" },
      { file = "wrong-name", message = "wrong%-name%.so: the plugin calls itself 'someone%-else', not 'wrong%-name'" },
    }
    for _, c in ipairs(cases) do
      it("when " .. c.file:gsub("-", " ") .. ", naming the plugin and file", function()
        local n = harness.native_loaded()
        local p, err = harness.load(FIX .. "/" .. c.file .. ".so")
        assert.is_nil(p)
        assert.matches("^plugin " .. c.file:gsub("%-", "%%-") .. ": ", err)
        assert.matches(c.message, err)
        assert.equal(n, (harness.native_loaded()))      -- nothing left loaded
      end)
    end

    it("when config_create reports, at the value's line and column", function()
      local p, err = harness.load(FIX .. "/config-fail.so", "limit: -3\n")
      assert.is_nil(p)
      assert.equal("config:1:8: plugin config-fail: config.limit: must be a positive integer", err)
      p, err = harness.load(FIX .. "/config-fail.so", "other: 1\n")
      assert.is_nil(p)
      assert.equal("config:1:1: plugin config-fail: config.limit: required field missing", err)
    end)

    it("when config_create fails without a word, saying so", function()
      local p, err = harness.load(FIX .. "/config-fail.so", { silent = true })
      assert.is_nil(p)
      assert.matches("plugin config%-fail: config_create failed and said nothing", err)
    end)

    it("when its sha256 pin differs, with both digests", function()
      local want = ("0"):rep(64)
      local p, err = harness.load(FIX .. "/probe.so", nil, { sha256 = want })
      assert.is_nil(p)
      assert.matches("sha256 mismatch: the file's SHA%-256 is " .. sha256_of(FIX .. "/probe.so")
                     .. ", the configuration pins " .. want, err)
    end)
  end)

  describe("is loaded from a private copy named by its SHA-256", function()
    it("shared by instances of the same content, closed with the last of them", function()
      -- Plugins and requests of earlier cases go with the garbage first.
      -- A finalizer may let go of what another finalizer holds, so collect
      -- until two full cycles in a row leave the count as it was.
      local n0, settled = harness.native_loaded(), 0
      for _ = 1, 20 do
        collectgarbage()
        local n = harness.native_loaded()
        settled = n == n0 and settled + 1 or 0
        n0 = n
        if settled == 2 then break end
      end
      local a = probe()
      local n1, dir = harness.native_loaded()
      local hash = sha256_of(FIX .. "/probe.so")
      assert.truthy(io.open(dir .. "/" .. hash .. ".so", "rb"), "the copy " .. hash .. ".so")
      local b = probe({ mode = "error" })
      assert.equal(n1, (harness.native_loaded()))
      a:free()
      assert.equal(n1, (harness.native_loaded()))
      b:free()
      assert.equal(n0 < n1 and n0 or n1 - 1, (harness.native_loaded()))
      assert.is_nil(io.open(dir .. "/" .. hash .. ".so", "rb"))
    end)

    it("matching a pin given in any case", function()
      local p = harness.load(FIX .. "/probe.so", nil,
                             { sha256 = sha256_of(FIX .. "/probe.so"):upper() })
      assert.truthy(p)
    end)
  end)
end)
