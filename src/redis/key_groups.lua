-- One step of redpush's key groups (`check_key_groups`), run with EVAL:
-- SCAN from cursor ARGV[1] with COUNT ARGV[2]; each key found goes to the
-- group of the first Lua pattern among ARGV[3..] it matches (string.find,
-- the group being the pattern's captures joined), else to `unclassified`.
-- Returns {next cursor, {group, keys, memory bytes, group, ...}}.
local scanned = redis.call('SCAN', ARGV[1], 'COUNT', ARGV[2])
local groups = {}
for _, key in ipairs(scanned[2]) do
  local group = 'unclassified'
  for i = 3, #ARGV do
    local found = {string.find(key, ARGV[i])}
    if found[1] then
      group = table.concat(found, '', 3)
      break
    end
  end
  local usage = redis.call('MEMORY', 'USAGE', key) or 0
  local entry = groups[group]
  if entry then
    entry[1] = entry[1] + 1
    entry[2] = entry[2] + usage
  else
    groups[group] = {1, usage}
  end
end
local flat = {}
for group, entry in pairs(groups) do
  flat[#flat + 1] = group
  flat[#flat + 1] = entry[1]
  flat[#flat + 1] = entry[2]
end
return {scanned[1], flat}
