let () =
  match input_line stdin with
  | "hello" -> print_endline "hello"
  | "echo" ->
    (try while true do print_endline (input_line stdin) done with End_of_file -> ())
  | "re" -> failwith "boom"
  | "cpu" -> let x = ref 0 in while !x >= 0 do incr x done
  | "sleep" -> Unix.sleep 30
  | "mle" ->
    let hold = ref [] in
    while true do hold := Bytes.make (16 lsl 20) 'x' :: !hold done
  | "ole" -> let s = String.make 65536 'x' in while true do print_string s done
  | "exit" -> exit 3
  | _ -> ()
