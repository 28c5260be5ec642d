-- Argo CD health check for aiguillage.dev/AIRoute, from the operator's status:
-- Healthy when the route is served as written (Ready=True for the current generation),
-- Degraded when it is not (Ready=False, with the operator's reason), Progressing until then.
local hs = {}
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the aiguillage operator to report status"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the aiguillage operator to process generation " .. tostring(obj.metadata.generation)
  return hs
end
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    if condition.status == "True" then
      hs.status = "Healthy"
    elseif condition.status == "False" then
      hs.status = "Degraded"
    else
      hs.status = "Progressing"
    end
    hs.message = condition.message or ""
    return hs
  end
end
hs.status = "Progressing"
hs.message = "No Ready condition yet"
return hs
