-- wrk script of load_http.sh: each request gets "/" with the next payload host name.
-- The names file (one host a line) is the first argument after "--".

local hosts = {}
local next_host = 1

function init(args)
    local path = args[1]
    if path == nil then
        error("capture.lua needs the names file: wrk ... -s capture.lua URL -- NAMES_FILE")
    end
    local file = assert(io.open(path, "r"))
    for line in file:lines() do
        hosts[#hosts + 1] = line
    end
    file:close()
    if #hosts == 0 then
        error("names file " .. path .. " holds no host name")
    end
end

function request()
    local host = hosts[next_host]
    next_host = next_host % #hosts + 1
    return wrk.format("GET", "/", { ["Host"] = host, ["User-Agent"] = "wrk", ["Accept"] = "*/*" })
end
