-- Native plugins in the running proxy: what `sluice -t` and a start refuse
-- (each with its file:line:col), how a failing hook meets on_error, and the
-- bundled C plugins in one chain with a Lua plugin, ordered by priority.
-- Fixture plugins come from spec/fixtures/native/, built by `make` next to
-- the library ($SLUICE_LIB's directory, fixtures-native/).
local h = require "spec.helpers"

local ROOT = os.getenv("PWD")
local BUILD = (os.getenv("SLUICE_LIB") or "build/libsluice.so"):match("^(.*)/[^/]+$") or "build"
if BUILD:sub(1, 1) ~= "/" then BUILD = ROOT .. "/" .. BUILD end
local NATIVE, FIX, LUA = BUILD .. "/plugins-native", BUILD .. "/fixtures-native", ROOT .. "/plugins-lua"

-- The plugins list starts on line 8.
local function config(port, origin_port, paths, plugins)
  return table.concat({
    "workers: 1",
    "listen: [127.0.0.1:" .. port .. "]",
    "upstreams:",
    "  app:",
    "    backends: [127.0.0.1:" .. origin_port .. "]",
    "plugin_paths: [" .. table.concat(paths, ", ") .. "]",
    "plugins:",
    plugins,
  }, "\n") .. "\n"
end

local function sh(cmd)
  local code, out = h.run(cmd)
  assert(code == 0, cmd .. ": " .. out)
end

local function temp_dir()
  local f = assert(io.popen("mktemp -d /tmp/sluice-native-spec-XXXXXX"))
  local dir = f:read("*l")
  f:close()
  return dir
end

local function escape(s)
  return (s:gsub("%p", "%%%0"))
end

-- Checks that -t and a start both refuse the configuration, with a line
-- "FILE:" .. where .. ": " .. want (want: a Lua pattern).
local function assert_refused(paths, plugins, where, want)
  local path = h.write_tmp(config(h.free_port(), 9, paths, plugins))
  local line = "^" .. escape(path) .. ":" .. escape(where) .. ": " .. want
  local t_code, t_out = h.run(h.quote(h.bin) .. " -t -c " .. h.quote(path))
  assert.are_not.equal(0, t_code)
  assert.truthy(t_out:find(line:gsub("%^", "", 1)), t_out)
  local s_code, s_out = h.run("timeout 10 " .. h.quote(h.bin) .. " -c " .. h.quote(path))
  assert.are_not.equal(0, s_code)
  assert.are_not.equal(124, s_code)
  assert.truthy(s_out:find(line:gsub("%^", "", 1)), s_out)
  return t_out
end

local function sha256_of(path)
  local f = assert(io.popen("sha256sum " .. h.quote(path)))
  local out = f:read("*a")
  f:close()
  return out:match("^(%x+)")
end

describe("native plugins", function()
  describe("that cannot be loaded are refused by -t and at start", function()
    local cases = {
      { name = "without an entry function", plugins = "  - no-entry", where = "8:5",
        want = "plugin no%-entry: " .. escape(FIX) .. "/no%-entry%.so: no sluice_plugin_init function: "
               .. "not a sluice native plugin" },
      { name = "built for another ABI major", plugins = "  - abi-major", where = "8:5",
        want = "plugin abi%-major: " .. escape(FIX) .. "/abi%-major%.so: built for sluice plugin ABI "
               .. "2%.3, this sluice has ABI 1%.%d+: rebuild it against this sluice's sluice_plugin%.h" },
      { name = "whose config_create fails", plugins = "  - name: config-fail\n    config: {limit: 0}",
        where = "9:21", want = "plugin config%-fail: config%.limit: must be a positive integer" },
      { name = "whose sha256 pin differs", where = "8:5",
        plugins = "  - name: probe\n    sha256: " .. ("ab"):rep(32),
        want = "plugin probe: " .. escape(FIX) .. "/probe%.so: sha256 mismatch: the file's SHA%-256 is "
               .. sha256_of(FIX .. "/probe.so") .. ", the configuration pins " .. ("ab"):rep(32) },
      { name = "asked for as native when only Lua exists", where = "8:5",
        plugins = "  - name: cors\n    kind: native",
        want = "plugin cors: not found: no cors%.so in " .. escape(FIX) .. ", " .. escape(LUA) },
    }
    for _, c in ipairs(cases) do
      it(c.name, function()
        assert_refused({ FIX, LUA }, c.plugins, c.where, c.want)
      end)
    end

    it("with a malformed sha256 pin, at its position", function()
      assert_refused({ FIX }, "  - name: probe\n    sha256: abc", "9:13",
                     "plugins%[0%]%.sha256: expected a SHA%-256 digest %(64 hex digits%), got 'abc'")
    end)

    describe("when the file lies outside the plugin paths", function()
      local tmp
      before_each(function()
        tmp = temp_dir()
        sh("mkdir " .. h.quote(tmp .. "/plugins") .. " " .. h.quote(tmp .. "/outside"))
        sh("cp " .. h.quote(FIX .. "/probe.so") .. " " .. h.quote(tmp .. "/outside/probe.so"))
      end)
      after_each(function()
        sh("rm -rf " .. h.quote(tmp))
      end)

      it("through '..' in file:", function()
        assert_refused({ tmp .. "/plugins" }, "  - name: probe\n    file: ../outside/probe.so",
                       "8:5", "plugin probe: " .. escape(tmp) .. "/plugins/%.%./outside/probe%.so resolves to "
                       .. escape(tmp) .. "/outside/probe%.so, outside the plugin paths")
      end)

      it("through a symlink", function()
        sh("ln -s ../outside/probe.so " .. h.quote(tmp .. "/plugins/probe.so"))
        assert_refused({ tmp .. "/plugins" }, "  - probe", "8:5",
                       "plugin probe: " .. escape(tmp) .. "/plugins/probe%.so resolves to "
                       .. escape(tmp) .. "/outside/probe%.so, outside the plugin paths")
      end)

      it("but not through a symlink that stays inside them", function()
        sh("cp " .. h.quote(FIX .. "/probe.so") .. " " .. h.quote(tmp .. "/plugins/real.so"))
        sh("ln -s real.so " .. h.quote(tmp .. "/plugins/probe.so"))
        local path = h.write_tmp(config(h.free_port(), 9, { tmp .. "/plugins" }, "  - probe"))
        local code, out = h.run(h.quote(h.bin) .. " -t -c " .. h.quote(path))
        assert.equal(0, code, out)
      end)

      it("and refuses NAME.lua and NAME.so side by side without kind:", function()
        sh("cp " .. h.quote(LUA .. "/request-id.lua") .. " " .. h.quote(NATIVE .. "/request-id.so")
           .. " " .. h.quote(tmp .. "/plugins/"))
        assert_refused({ tmp .. "/plugins" }, "  - request-id", "8:5",
                       "plugin request%-id: ambiguous: .* say which with kind: lua or kind: native")
        local path = h.write_tmp(config(h.free_port(), 9, { tmp .. "/plugins" },
                                        "  - name: request-id\n    kind: native"))
        local code, out = h.run(h.quote(h.bin) .. " -t -c " .. h.quote(path))
        assert.equal(0, code, out)
      end)
    end)
  end)

  describe("in the running proxy", function()
    local origin

    lazy_setup(function()
      origin = h.start_origin()
    end)

    lazy_teardown(function()
      if origin then origin:stop() end
    end)

    local function start(paths, plugins)
      local port = h.free_port()
      return h.start_proxy { config = config(port, origin.port, paths, plugins), port = port }
    end

    it("answer 500 when a hook fails with on_error: fail (the default)", function()
      local proxy = start({ FIX }, "  - name: probe\n    config: {mode: error}")
      finally(function() proxy:stop() end)
      local resp = assert(h.get(proxy.port, "/echo"))
      assert.equal(500, resp.status)
      assert.truthy(proxy:wait_log("plugin probe: request_headers phase failed %(request %x+%): "
                                   .. "probe: told to fail"))
    end)

    it("skip a failing hook with on_error: continue", function()
      local proxy = start({ FIX }, "  - name: probe\n    on_error: continue\n    config: {mode: error}")
      finally(function() proxy:stop() end)
      local resp = assert(h.get(proxy.port, "/echo"))
      assert.equal(200, resp.status)
      assert.matches("\r\nX%-Probe%-Calls: 1\r\n", resp.body)
    end)

    it("keep per-worker and per-request state, freed as requests end", function()
      local proxy = start({ FIX }, "  - probe")
      finally(function() proxy:stop() end)
      local stats
      for _ = 1, 3 do
        local resp = assert(h.get(proxy.port, "/echo"))
        assert.equal(200, resp.status)
        stats = resp.headers["x-probe-stats"]
      end
      -- one worker: one worker_init; the third response is built while its
      -- own state is alive, after the first two were freed
      assert.equal("workers=1 freed=2 calls=1", stats)
    end)

    it("keep per-request state without worker_init, freed once as requests end", function()
      local proxy = start({ FIX }, "  - keeper\n  - keeper-arena")
      finally(function() proxy:stop() end)
      local stats, arena
      for _ = 1, 3 do
        local resp = assert(h.get(proxy.port, "/echo"))
        assert.equal(200, resp.status)
        assert.matches("\r\nX%-keeper%-Calls: 1\r\n", resp.body)
        assert.matches("\r\nX%-keeper%-arena%-Calls: 1\r\n", resp.body)
        stats, arena = resp.headers["x-keeper-stats"], resp.headers["x-keeper-arena-stats"]
      end
      -- the first two requests' states went to request_free once each; the
      -- arena's need none
      assert.equal("freed=2 calls=1", stats)
      assert.equal("freed=0 calls=1", arena)
    end)

    describe("share one chain with Lua plugins, ordered by priority", function()
      local tmp
      lazy_setup(function()
        tmp = temp_dir()
        local f = assert(io.open(tmp .. "/tagger.lua", "wb"))
        f:write([[
          local sluice = require "sluice"
          return {
            name = "tagger", version = "1", priority = 900,
            request_headers = function()
              sluice.request.set_header("X-Saw-Id", sluice.ctx.get("request_id") or "none")
            end,
            response_headers = function()
              sluice.response.set_header("X-Lua", "1")
            end,
          }
        ]])
        f:close()
      end)
      lazy_teardown(function()
        sh("rm -rf " .. h.quote(tmp))
      end)

      local PLUGINS = table.concat({
        "  - name: request-id",         -- native, 100000
        "    kind: native",
        "  - tagger",                   -- Lua, 900
        "  - name: headers",            -- native, 800 unless overridden
        "    kind: native",
        "    config: {request: {rename: {X-Saw-Id: X-Seen-Id}},",
        "             response: {rename: {X-Request-Id: X-Trace-Id, X-Lua: X-Lua-Seen}}}",
      }, "\n")

      it("native, then Lua, then native, on the request and the response", function()
        local proxy = start({ tmp, NATIVE, LUA }, PLUGINS)
        finally(function() proxy:stop() end)
        local resp = assert(h.get(proxy.port, "/echo", { { "X-Request-Id", "abc-1" } }))
        assert.equal(200, resp.status)
        -- the origin: request-id's id, seen by the Lua plugin through the
        -- shared ctx, its field renamed by the native headers plugin
        assert.matches("\r\nX%-Request%-Id: abc%-1\r\n", resp.body)
        assert.matches("\r\nX%-Seen%-Id: abc%-1\r\n", resp.body)
        assert.is_nil(resp.body:find("X-Saw-Id", 1, true))
        -- the client: both earlier plugins' fields renamed by headers
        assert.equal("abc-1", resp.headers["x-trace-id"])
        assert.equal("1", resp.headers["x-lua-seen"])
        assert.is_nil(resp.headers["x-request-id"])
        assert.is_nil(resp.headers["x-lua"])
      end)

      it("and an entry's priority moves a native plugin ahead of a Lua one", function()
        local proxy = start({ tmp, NATIVE, LUA }, PLUGINS .. "\n    priority: 950")
        finally(function() proxy:stop() end)
        local resp = assert(h.get(proxy.port, "/echo", { { "X-Request-Id", "abc-2" } }))
        assert.equal(200, resp.status)
        -- headers ran before tagger: nothing to rename yet, on either side
        assert.matches("\r\nX%-Saw%-Id: abc%-2\r\n", resp.body)
        assert.equal("1", resp.headers["x-lua"])
        assert.equal("abc-2", resp.headers["x-trace-id"])
      end)

      it("and -t checks it all the same", function()
        local path = h.write_tmp(config(h.free_port(), 9, { tmp, NATIVE, LUA }, PLUGINS))
        local code, out = h.run(h.quote(h.bin) .. " -t -c " .. h.quote(path))
        assert.equal(0, code, out)
        assert.matches("is valid", out)
      end)
    end)
  end)
end)
