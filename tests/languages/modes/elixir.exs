import Bitwise
case IO.gets("") |> String.trim() do
  "hello" -> IO.puts("hello")
  "echo" -> IO.write(IO.read(:stdio, :eof))
  "re" -> raise "boom"
  "cpu" -> Stream.iterate(0, &(&1 + 1)) |> Enum.find(&(&1 < 0))
  "sleep" -> Process.sleep(30_000)
  "mle" -> Enum.reduce(Stream.iterate(0, &(&1 + 1)), [], fn _, acc -> [<<1::size(128 <<< 20)>> | acc] end)
  "ole" -> s = String.duplicate("x", 65536); Stream.repeatedly(fn -> IO.write(s) end) |> Stream.run()
  "exit" -> System.halt(3)
  _ -> nil
end
