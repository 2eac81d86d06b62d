-- wrk script for scripts/bench_server.py: cycles the requests over the paths listed one a line in
-- the file named by the first script argument, so a run reads many distinct resources rather than
-- one hot one.
--
--   wrk -t1 -c32 -d10s -s scripts/wrk_paths.lua http://127.0.0.1:18090 -- paths.txt [patch-score]
--
-- With `patch-score` each request is a PATCH setting the record's Score instead of a GET.
-- Headers given with -H (Authorization) are in wrk.headers, which wrk.format sends with each request.

local paths = {}
local sent = 0
local patch = false

function init(args)
  local file = io.open(args[1] or "", "r")
  if file == nil then
    error("wrk_paths.lua: cannot read the paths file " .. tostring(args[1]))
  end
  for line in file:lines() do
    if #line > 0 then
      paths[#paths + 1] = line
    end
  end
  file:close()
  if #paths == 0 then
    error("wrk_paths.lua: no paths in " .. args[1])
  end
  patch = args[2] == "patch-score"
  if patch then
    wrk.headers["Content-Type"] = "application/json"
  end
end

function request()
  sent = sent + 1
  local path = paths[(sent % #paths) + 1]
  if patch then
    return wrk.format("PATCH", path, nil, '{"fields":{"Score":' .. (sent % 1000) .. '}}')
  end
  return wrk.format("GET", path)
end
