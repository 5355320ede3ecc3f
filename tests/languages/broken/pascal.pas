program broken;
var x: integer;
begin
  x := 'a'
end.
