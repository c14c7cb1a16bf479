-- wrk script: spreads GETs over the benchmark's record ids.
--
--   wrk ... -s tests/bench/ids.lua URL -- PROJECT_ID [COUNT] [PREFIX]
--
-- Each request asks for /v2/PROJECT_ID/script-execution-records/PREFIXnnnn,
-- nnnn cycling over 0 .. COUNT-1 (default 1000, prefix "rec-"). Every
-- thread starts at its own place in the cycle, so the connections do not
-- march through the ids in step. The requests are formatted once, in init,
-- so the per-request cost in wrk is a table lookup.

local requests = {}
local count = 0
local next_index = 0
local threads = 0

function setup(thread)
   thread:set("thread_index", threads)
   threads = threads + 1
end

function init(args)
   local project = args[1] or "0123456789abcdef0123456789abcdef"
   count = tonumber(args[2] or "1000")
   local prefix = args[3] or "rec-"
   for i = 0, count - 1 do
      local path = string.format("/v2/%s/script-execution-records/%s%04d",
                                 project, prefix, i)
      requests[i] = wrk.format("GET", path)
   end
   -- thread_index is set by setup(); 0 when run without it.
   local t = thread_index or 0
   next_index = (t * 397) % count
end

function request()
   local r = requests[next_index]
   next_index = next_index + 1
   if next_index >= count then
      next_index = 0
   end
   return r
end
