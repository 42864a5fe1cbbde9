-- wrk script for onshi's device check-in (POST /api/v1/checkin), used by bench/checkin.
-- Loads the device tokens written by `onshi fixture` (file named by ONSHI_TOKENS); every request
-- uses the next token, each wrk thread starting at its own offset, so the server looks up a
-- different device each time, as a fleet of 100,000 terminals would make it.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local tokens = {}
local i = 0
local body = '{"installed":"1.0.0","running":"1.0.0"}'

function init(args)
   local path = os.getenv("ONSHI_TOKENS")
   if not path then
      error("set ONSHI_TOKENS to the token file written by `onshi fixture`")
   end
   for line in io.lines(path) do
      if #line > 0 then
         tokens[#tokens + 1] = line
      end
   end
   if #tokens == 0 then
      error("no tokens in " .. path)
   end
   -- Spread the threads over the fleet. `id` comes from setup(); wrk sets it before init.
   i = (id or 0) * 7919 % #tokens
   wrk.method = "POST"
   wrk.body = body
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   i = i % #tokens + 1
   wrk.headers["Authorization"] = "Bearer " .. tokens[i]
   return wrk.format()
end
