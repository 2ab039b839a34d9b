-- lua/sluice/shared.lua: sluice.shared, dictionaries shared by all workers
-- (declared in the configuration). Not available yet: every function
-- raises, so a plugin written against it fails clearly at its first use.

local M = {}

local function unavailable()
  error("sluice.shared: not available yet", 2)
end

--- dict(name) -> a shared dictionary (not available yet: raises).
M.dict = unavailable

return M
