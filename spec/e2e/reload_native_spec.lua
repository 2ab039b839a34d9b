-- Hot reload of native plugins end to end: SIGHUP (and the file watcher)
-- swap a native plugin rebuilt in place together with a Lua plugin and the
-- configuration, under keep-alive load, without a failed request; a slow
-- request finishes on the old native code, whose private copy is unloaded
-- once its generation retires; a reload that cannot load the native plugin
-- (ABI major, config_create, sha256 pin, a path leading out of the plugin
-- directories through '..' or a symlink) changes nothing, logs the error
-- with its position and counts it.
-- 100 reloads of native plugins are in reload_native_soak_spec.lua.
--
-- "vtag" is one C source built twice (spec/fixtures/native/versioned/vtag.c
-- -> fixtures-native/vtag-1.so, vtag-2.so): X-Native names its version,
-- X-Native-Tag its config's tag. "ltag" is a Lua plugin doing the same with
-- X-Lua and X-Lua-Tag. Two states take turns: "A" (vtag-1, ltag v1, both
-- tagged A) and "B" (vtag-2, ltag v2, tagged B); a response shows which
-- generation served it.
--
-- Run: busted --lua=luajit spec/e2e/reload_native_spec.lua
local h = require "spec.helpers"
local json = require "dkjson"
local R = require "spec.e2e.reload_support"

local write, count, outcomes, reload, esc = R.write, R.count, R.outcomes, R.reload, R.esc
local FIX = R.fixtures_native()
local VERSION = { A = 1, B = 2 }

local LTAG = [[
local sluice = require "sluice"
local VERSION = "v%d"
return {
  name = "ltag", version = VERSION, priority = 10,
  schema = { type = "record", fields = { { tag = { type = "string", required = true } } } },
  response_headers = function(conf)
    sluice.response.set_header("X-Lua", VERSION)
    sluice.response.set_header("X-Lua-Tag", conf.tag)
  end,
}
]]

-- The vtag entry is on line 10, its config on line 11; opts: tag
-- (vtag's config, default which), vtag (the entry's extra lines), watch.
local function config(env, which, opts)
  opts = opts or {}
  return table.concat({
    "workers: 2",
    "listen: [127.0.0.1:" .. env.port .. "]",
    "admin: {listen: 127.0.0.1:" .. env.aport .. "}",
    "watch: " .. tostring(opts.watch == true),
    "upstreams:",
    "  app:",
    "    backends: [127.0.0.1:" .. env.origin.port .. "]",
    "plugin_paths: [" .. env.pdir .. "]",
    "plugins:",
    "  - name: vtag",
    "    config: {tag: " .. (opts.tag or which) .. "}" .. (opts.vtag or ""),
    "  - name: ltag",
    "    config: {tag: " .. which .. "}",
  }, "\n") .. "\n"
end

-- Puts the plugin files of state which in place (vtag by rename, as a
-- build would).
local function plugins(env, which)
  R.install(FIX .. "/vtag-" .. VERSION[which] .. ".so", env.pdir .. "/vtag.so")
  write(env.pdir .. "/ltag.lua", LTAG:format(VERSION[which]))
end

local function fields(resp, name)
  local n = 0
  for _, hd in ipairs(resp.header_list) do
    if hd.name:lower() == name:lower() then n = n + 1 end
  end
  return n
end

-- "A" or "B" when every plugin field is there exactly once and all four
-- name the same state; nil and why otherwise.
local function served_by(resp)
  if resp.status ~= 200 then return nil, "status " .. tostring(resp.status) end
  for _, name in ipairs { "X-Native", "X-Native-Tag", "X-Lua", "X-Lua-Tag" } do
    if fields(resp, name) ~= 1 then
      return nil, name .. " appears " .. fields(resp, name) .. " times:\n" .. resp.head_raw
    end
  end
  local hd = resp.headers
  for which, v in pairs(VERSION) do
    if hd["x-native"] == "v" .. v and hd["x-lua"] == "v" .. v and hd["x-native-tag"] == which
        and hd["x-lua-tag"] == which then
      return which
    end
  end
  return nil, string.format("inconsistent response: X-Native %s, X-Native-Tag %s, X-Lua %s, "
    .. "X-Lua-Tag %s", hd["x-native"], hd["x-native-tag"], hd["x-lua"], hd["x-lua-tag"])
end

local function get_on(conn, path)
  assert(conn:send(h.build_request("GET", path)))
  return conn:read_response()
end

local function admin_status(env)
  local resp = assert(h.get(env.aport, "/admin/status"))
  assert.equals(200, resp.status, resp.body)
  return assert(json.decode(resp.body, 1, json.null))
end

-- How many distinct vtag copies (by content) the proxy has mapped.
local function mapped_copies(proxy, which)
  return (R.mapped(proxy.pid, R.sha256(FIX .. "/vtag-" .. VERSION[which] .. ".so") .. ".so"))
end

describe("reloading native plugins", function()
  local env, proxy

  lazy_setup(function()
    env = { origin = h.start_origin { name = "o", log = false } }
  end)

  lazy_teardown(function()
    if env.origin then env.origin:stop() end
  end)

  local function start(opts)
    env.pdir = R.tmpdir()
    plugins(env, "A")
    env.port, env.aport = h.free_port(), h.free_port()
    proxy = h.start_proxy { config = config(env, "A", opts), port = env.port }
    assert.equals("A", assert(served_by(assert(h.get(env.port, "/x")))))
  end

  after_each(function()
    if proxy then
      local code = proxy:stop()
      assert.equals(0, code)
    end
    proxy = nil
    R.rmdir(env.pdir)
  end)

  describe("on SIGHUP", function()
    before_each(function() start() end)

    it("survives 20 reloads alternating native and Lua versions under keep-alive load", function()
      -- 4 keep-alive connections, each with one request in flight at a
      -- time, plus a fresh connection per round
      local conns = {}
      for i = 1, 4 do conns[i] = assert(h.connect(env.port)) end
      local seen, total = { A = 0, B = 0 }, 0
      local function round(tag)
        for i, c in ipairs(conns) do
          assert(c:send(h.build_request("GET", "/load/" .. tag .. "/" .. i)))
        end
        for _, c in ipairs(conns) do
          local resp, err = c:read_response()
          assert(resp, "request failed: " .. tostring(err))
          local which, why = served_by(resp)
          assert(which, why)
          assert.is_falsy(resp.closed)
          seen[which] = seen[which] + 1
          total = total + 1
        end
        local which, why = served_by(assert(h.get(env.port, "/fresh")))
        assert(which, why)
        total = total + 1
      end
      for i = 1, 20 do
        local which = i % 2 == 1 and "B" or "A"
        local ok0 = outcomes(proxy)
        plugins(env, which)
        write(proxy.config_path, config(env, which))
        proxy:signal("HUP")
        for r = 1, 5 do round(i .. "." .. r) end    -- while the reload is under way
        assert(h.wait_until(function() return outcomes(proxy) > ok0 end, 10), "reload " .. i)
        round(i .. ".after")
        -- from now on every request is on the new generation
        for _, c in ipairs(conns) do
          assert.equals(which, assert(served_by(assert(get_on(c, "/now")))))
        end
      end
      local ok, bad, same = outcomes(proxy)
      assert.same({ 20, 0, 0 }, { ok, bad, same })
      assert.is_true(seen.A > 0 and seen.B > 0)
      for _, c in ipairs(conns) do
        assert.is_falsy(c.reset)
        assert.is_falsy(c:is_closed(0))
        c:close()
      end
      print(string.format("\nnative reload load: %d requests over 20 reloads (A %d, B %d on "
        .. "keep-alive)", total, seen.A, seen.B))
    end)

    it("finishes a slow request on the old native code, then unloads its copy", function()
      local conn = assert(h.connect(env.port))
      finally(function() conn:close() end)
      assert(conn:send(h.build_request("GET", "/delay/1500")))
      h.sleep(0.3)    -- the request is at the origin; vtag-1 made its state
      plugins(env, "B")
      assert.equals("ok", reload(proxy, config(env, "B")))
      assert.equals("B", assert(served_by(assert(h.get(env.port, "/x")))))
      -- both copies are mapped while the slow request holds the old one
      assert.same({ 1, 1 }, { mapped_copies(proxy, "A"), mapped_copies(proxy, "B") })
      local resp = assert(conn:read_response { timeout = 5 })
      assert.equals("A", assert(served_by(resp)))
      assert.equals("B", assert(served_by(assert(get_on(conn, "/after")))))
      -- the old generation retires (the other worker at its tick): its
      -- copy is closed, unmapped and removed
      assert(h.wait_until(function() return mapped_copies(proxy, "A") == 0 end, 5),
        "vtag-1's copy is still mapped")
      local st = R.status(proxy)
      assert.same({ 1, 2, 1 }, { st.native_open, st.native_loaded, st.native_unloaded })
      assert.equals(1, mapped_copies(proxy, "B"))
    end)

    describe("that cannot load the native plugin keeps the running one", function()
      -- Reloads (writing cfg first unless nil), expects a failure logged
      -- as `pattern`, then checks the old generation serves, the failure
      -- is counted (admin API and status line) and no native copy was
      -- left behind: the failed reload loaded `loads` copies (0: it failed
      -- before, or found the running content loaded already) and unloaded
      -- them again. Then a good reload still works.
      local function expect_kept(cfg, pattern, loads)
        local st0 = R.status(proxy)
        assert.equals("failed", reload(proxy, cfg))
        local log = proxy:log()
        assert.matches("%[error%] " .. pattern, log)
        assert.matches("sluice: reload failed: 1 error; keeping generation " .. st0.generation, log)
        for _ = 1, 4 do
          assert.equals("A", assert(served_by(assert(h.get(env.port, "/x")))))
        end
        local st = R.status(proxy)
        assert.same({ st0.generation, st0.ok, st0.failed + 1 }, { st.generation, st.ok, st.failed })
        assert.same({ st0.native_open, st0.native_loaded + loads, st0.native_unloaded + loads },
          { st.native_open, st.native_loaded, st.native_unloaded })
        local a = admin_status(env)
        assert.equals(st.failed, a.reloads.failed)
        assert.is_false(a.reloads.last.ok)
        assert.matches(pattern, a.reloads.last.error)
        assert.same({ 1, 0 }, { mapped_copies(proxy, "A"), mapped_copies(proxy, "B") })

        R.sh("rm -f " .. h.quote(env.pdir .. "/vtag.so"))
        plugins(env, "B")
        assert.equals("ok", reload(proxy, config(env, "B")))
        assert.equals("B", assert(served_by(assert(h.get(env.port, "/x")))))
      end

      it("on an ABI major mismatch, naming file, line and column", function()
        R.install(FIX .. "/abi-major.so", env.pdir .. "/vtag.so")
        expect_kept(nil, esc(proxy.config_path) .. ":10:5: plugin vtag: " .. esc(env.pdir)
          .. "/vtag%.so: built for sluice plugin ABI 2%.3, this sluice has ABI 1%.%d+: rebuild it "
          .. "against this sluice's sluice_plugin%.h", 1)
      end)

      it("on a config_create failure, naming file, line and column of the value", function()
        expect_kept(config(env, "A", { tag = "[x]" }),
          esc(proxy.config_path) .. ":11:19: plugin vtag: config%.tag: must be a string", 0)
      end)

      it("on a sha256 pin the replaced file no longer matches", function()
        local pin = R.sha256(FIX .. "/vtag-1.so")
        local pinned = config(env, "A", { vtag = "\n    sha256: " .. pin })
        assert.equals("ok", reload(proxy, pinned))
        assert.equals("A", assert(served_by(assert(h.get(env.port, "/x")))))
        R.install(FIX .. "/vtag-2.so", env.pdir .. "/vtag.so")
        expect_kept(nil, esc(proxy.config_path) .. ":10:5: plugin vtag: " .. esc(env.pdir)
          .. "/vtag%.so: sha256 mismatch: the file's SHA%-256 is " .. R.sha256(FIX .. "/vtag-2.so")
          .. ", the configuration pins " .. pin, 0)
      end)

      describe("on a path leading out of the plugin directories", function()
        local outside
        before_each(function()
          outside = R.tmpdir()
          R.sh("cp " .. h.quote(FIX .. "/vtag-2.so") .. " " .. h.quote(outside .. "/vtag.so"))
        end)
        after_each(function() R.rmdir(outside) end)

        it("through '..' in file:", function()
          local rel = "../" .. outside:match("[^/]+$") .. "/vtag.so"
          expect_kept(config(env, "A", { vtag = "\n    file: " .. rel }),
            esc(proxy.config_path) .. ":10:5: plugin vtag: " .. esc(env.pdir .. "/" .. rel)
            .. " resolves to " .. esc(outside) .. "/vtag%.so, outside the plugin paths", 0)
        end)

        it("through a symlink put in place of the plugin", function()
          R.sh("ln -sfn " .. h.quote(outside .. "/vtag.so") .. " " .. h.quote(env.pdir .. "/vtag.so"))
          expect_kept(nil, esc(proxy.config_path) .. ":10:5: plugin vtag: " .. esc(env.pdir)
            .. "/vtag%.so resolves to " .. esc(outside) .. "/vtag%.so, outside the plugin paths", 0)
        end)
      end)

      it("on a Lua plugin failing after the new native copy loaded, which is unloaded", function()
        R.install(FIX .. "/vtag-2.so", env.pdir .. "/vtag.so")
        write(env.pdir .. "/ltag.lua", LTAG:format(2):gsub("conf%.tag%)", "conf.tag"))
        expect_kept(nil, "[^\n]*" .. esc(env.pdir) .. "/ltag%.lua:9: '%)' expected", 1)
      end)
    end)

    it("reports a copy that dlclose cannot unmap, and keeps counting it open", function()
      -- vtag-3 is linked NODELETE: glibc never unmaps it
      R.install(FIX .. "/vtag-3.so", env.pdir .. "/vtag.so")
      assert.equals("ok", reload(proxy, nil))
      assert.equals("v3", assert(h.get(env.port, "/x")).headers["x-native"])
      assert(h.wait_until(function() return mapped_copies(proxy, "A") == 0 end, 5))
      R.install(FIX .. "/vtag-1.so", env.pdir .. "/vtag.so")
      assert.equals("ok", reload(proxy, nil))
      assert.equals("A", assert(served_by(assert(h.get(env.port, "/x")))))
      local sha3 = R.sha256(FIX .. "/vtag-3.so")
      assert(proxy:wait_log("%[warn%] plugin [^\n]*/" .. sha3 .. "%.so: still mapped after its "
        .. "last dlclose %(a NODELETE object"), proxy:log())
      local st = R.status(proxy)
      assert.same({ 2, 3, 1 }, { st.native_open, st.native_loaded, st.native_unloaded })
      local n, paths = R.mapped(proxy.pid, sha3 .. ".so")
      assert.equals(1, n)
      assert.matches(" %(deleted%)$", paths[1])
    end)
  end)

  describe("with watch: true", function()
    before_each(function()
      start { watch = true }
      assert(proxy:wait_log("sluice: watch: watching %d+ directories"), proxy:log())
    end)

    local function wait_served(which)
      assert(h.wait_until(function()
        return served_by(assert(h.get(env.port, "/x"))) == which
      end, 3), "never served " .. which .. "; log:\n" .. proxy:log())
    end

    it("reloads a native plugin replaced by rename, and unloads the old copy", function()
      -- a rebuilt plugin copied over the old one with rename-on-save; the
      -- configuration and ltag stay: X-Native changes alone
      local t0 = h.now()
      R.install(FIX .. "/vtag-2.so", env.pdir .. "/vtag.so")
      assert(h.wait_until(function()
        return assert(h.get(env.port, "/x")).headers["x-native"] == "v2"
      end, 3), "vtag-2 never served; log:\n" .. proxy:log())
      local took = h.now() - t0
      assert.is_true(took < 1.5, "took " .. took .. " s")
      assert.matches("sluice: watch: " .. esc(env.pdir) .. "/vtag%.so changed", proxy:log())
      h.sleep(0.5)
      assert.same({ 1, 0, 0 }, { outcomes(proxy) })
      assert(h.wait_until(function() return mapped_copies(proxy, "A") == 0 end, 5),
        "vtag-1's copy is still mapped")
      -- and back, with the Lua plugin and the configuration in one save
      plugins(env, "B")
      write(proxy.config_path, config(env, "B", { watch = true }))
      wait_served("B")
    end)

    it("reloads a native plugin overwritten in place (the private copy keeps the old one safe)",
       function()
      -- cp truncates and rewrites the very file the first copy was made
      -- from; the running code is the private copy, so nothing breaks
      -- while the bytes change, and the debounce waits for the last write
      R.sh("cp " .. h.quote(FIX .. "/vtag-2.so") .. " " .. h.quote(env.pdir .. "/vtag.so"))
      assert(h.wait_until(function()
        return assert(h.get(env.port, "/x")).headers["x-native"] == "v2"
      end, 3), "vtag-2 never served; log:\n" .. proxy:log())
      h.sleep(0.5)
      local ok, bad = outcomes(proxy)
      assert.same({ 1, 0 }, { ok, bad })
      assert.equals(1, count(proxy:log(), "sluice: watch: reloading "))
    end)
  end)
end)
