{$mode objfpc}{$H+}
program modes;
uses SysUtils;
type PBlock = ^TBlock;
     TBlock = array[0..(16 shl 20) - 1] of byte;
var mode, line: string;
    x: QWord;
    p: PBlock;
    s: AnsiString;
begin
  readln(mode);
  if mode = 'hello' then writeln('hello')
  else if mode = 'echo' then
    while not eof do begin readln(line); writeln(line) end
  else if mode = 're' then raise Exception.Create('boom')
  else if mode = 'cpu' then begin x := 0; while x < High(QWord) do Inc(x) end
  else if mode = 'sleep' then Sleep(30000)
  else if mode = 'mle' then
    while true do begin New(p); FillChar(p^, SizeOf(TBlock), 1) end
  else if mode = 'ole' then begin
    SetLength(s, 65536); FillChar(s[1], 65536, 'x');
    while true do write(s)
  end
  else if mode = 'exit' then Halt(3);
end.
