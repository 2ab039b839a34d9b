-- spec/support/summary.lua: busted output handler for spec/run.sh.
--
--   busted --lua=luajit -o spec/support/summary.lua spec
--
-- Prints one line per test, "ok - name" or "FAIL - name" (the latter
-- followed by the message and traceback, indented), a line for every error
-- outside a test (file load, setup, teardown), and a count line at the end.
-- Appends "PASSED FAILED\n" to the file named by $SLUICE_RESULTS, where
-- errors count as failed, so run.sh can sum passes and tell a crashed busted
-- (no line) from a failing one. Pending tests are reported, not counted.
--
-- It also publishes package.loaded["sluice.harness_report"] = { failures = {} }
-- before any spec file runs: spec/helpers.lua records there what it finds
-- after a spec ended (a sanitizer report from a process the spec did not
-- stop), and those count as failures too.

local io_write, io_flush = io.write, io.flush

return function(options)
  local busted = require "busted"
  local handler = require "busted.outputHandlers.base"()
  local report = { failures = {} }
  package.loaded["sluice.harness_report"] = report

  local function indent(s)
    s = tostring(s):gsub("%s+$", "")
    return "    " .. s:gsub("\n", "\n    ")
  end

  local function show(label, t)
    local message = t.message
    if message == nil then
      message = "nil error"
    elseif type(message) ~= "string" then
      local ok, pretty = pcall(require, "pl.pretty")
      message = ok and pretty.write(message) or tostring(message)
    end
    io_write(label, " - ", t.name or "?", "\n")
    local trace = t.element and t.element.trace
    if trace and trace.short_src then
      io_write("    at ", trace.short_src, ":", tostring(trace.currentline), "\n")
    end
    io_write(indent(message), "\n")
    if t.trace and t.trace.traceback then
      io_write(indent((t.trace.traceback:gsub("^\n", ""))), "\n")
    end
  end

  handler.testEnd = function(element, parent, status)
    local name = handler.getFullName(element)
    if status == "success" then
      io_write("ok - ", name, "\n")
    elseif status == "pending" then
      io_write("pending - ", name, "\n")
    elseif status == "failure" then
      show("FAIL", handler.failures[#handler.failures])
    elseif status == "error" then
      show("FAIL", handler.errors[#handler.errors])
    end
    io_flush()
    return nil, true
  end

  -- Failures and errors outside an `it` (a file that does not load, a
  -- failing setup or teardown); inside an `it` they are reported by testEnd.
  handler.outsideTest = function(element)
    if element.descriptor ~= "it" then
      local list = handler.errors
      show("FAIL", list[#list] or { name = handler.getFullName(element), message = "error" })
      io_flush()
    end
    return nil, true
  end

  handler.suiteEnd = function()
    for _, msg in ipairs(report.failures) do
      show("FAIL", { name = "harness cleanup", message = msg })
    end
    local passed = handler.successesCount
    local failed = handler.failuresCount + handler.errorsCount + #report.failures
    io_write(string.format("%d passed, %d failed, %d pending\n", passed, failed, handler.pendingsCount))
    io_flush()
    local path = os.getenv("SLUICE_RESULTS")
    if path and path ~= "" then
      local f = io.open(path, "a")
      if f then
        f:write(passed, " ", failed, "\n")
        f:close()
      else
        io.stderr:write("summary: cannot append to ", path, "\n")
      end
    end
    return nil, true
  end

  -- busted calls handler:subscribe(options) (the base counters) after this
  -- function returns; these run after those.
  busted.subscribe({ "test", "end" }, handler.testEnd, { predicate = handler.cancelOnPending })
  busted.subscribe({ "error" }, handler.outsideTest)
  busted.subscribe({ "failure" }, handler.outsideTest)
  busted.subscribe({ "suite", "end" }, handler.suiteEnd)

  return handler
end
