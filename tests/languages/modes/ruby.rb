mode = $stdin.gets.to_s.chomp
case mode
when "hello" then puts "hello"
when "echo" then $stdout.write($stdin.read)
when "re" then raise "boom"
when "cpu" then x = 0; x += 1 while x >= 0
when "sleep" then sleep 30
when "mle" then hold = []; loop { hold << ("x" * (16 << 20)) + hold.size.to_s }
when "ole" then s = "x" * 65536; loop { $stdout.write(s) }
when "exit" then exit 3
end
