<?php
$mode = trim(fgets(STDIN));
switch ($mode) {
case "hello": echo "hello\n"; break;
case "echo": echo stream_get_contents(STDIN); break;
case "re": throw new Exception("boom");
case "cpu": $x = 0; while ($x >= 0) $x++; break;
case "sleep": sleep(30); break;
case "mle": $hold = []; while (true) $hold[] = str_repeat("x", 16 << 20) . count($hold); break;
case "ole": $s = str_repeat("x", 65536); while (true) echo $s; break;
case "exit": exit(3);
}
