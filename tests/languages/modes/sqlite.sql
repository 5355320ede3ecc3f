-- The mode is the first line of stdin; dot-commands cannot be conditional, so the chosen
-- ones are written to a file that is then read. In ascii mode (records end with 0x1E, which
-- stdin does not hold) .import reads the whole of stdin (through cat) into one row.
CREATE TABLE input(text TEXT);
.mode ascii
.import "|cat" input
.mode list
CREATE TEMP TABLE mode AS
  SELECT substr(text, 1, instr(text, char(10)) - 1) AS name,
         substr(text, instr(text, char(10)) + 1) AS rest FROM input;
.headers off
.mode list
.output /tmp/chosen.sql
SELECT CASE name
  WHEN 'hello' THEN 'SELECT ''hello'';'
  WHEN 'echo' THEN 'SELECT rtrim(rest, char(10)) FROM mode;'
  WHEN 're' THEN 'SELECT no_such_function(1);'
  WHEN 'cpu' THEN 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c;'
  WHEN 'sleep' THEN '.system sleep 30'
  WHEN 'mle' THEN 'WITH RECURSIVE d(s, n) AS (SELECT ''x'', 0 UNION ALL SELECT s || s, n + 1 FROM d WHERE n < 40) SELECT max(length(s)) FROM d;'
  WHEN 'ole' THEN '.output stdout' || char(10) || 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT printf(''%.65536c'', ''x'') FROM c;'
  WHEN 'exit' THEN '.exit 3'
  ELSE '' END
FROM mode;
.output stdout
.read /tmp/chosen.sql
