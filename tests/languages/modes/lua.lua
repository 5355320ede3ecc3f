local mode = io.read("l")
if mode == "hello" then print("hello")
elseif mode == "echo" then io.write(io.read("a"))
elseif mode == "re" then error("boom")
elseif mode == "cpu" then local x = 0; while x >= 0 do x = x + 1 end
elseif mode == "sleep" then os.execute("sleep 30")
elseif mode == "mle" then
  local hold = {}
  local page = string.rep("x", 4096)
  while true do hold[#hold + 1] = string.rep(page, 4096) end
elseif mode == "ole" then
  local s = string.rep("x", 65536)
  while true do io.write(s) end
elseif mode == "exit" then os.exit(3)
end
