mode = fgetl(stdin);
switch mode
  case 'hello'
    printf('hello\n');
  case 'echo'
    while true
      line = fgetl(stdin);
      if ~ischar(line), break; end
      printf('%s\n', line);
    end
  case 're'
    error('boom');
  case 'cpu'
    x = 0;
    while x >= 0
      x = x + 1;
    end
  case 'sleep'
    pause(30);
  case 'mle'
    hold = {};
    while true
      hold{end + 1} = ones(2 * 1024 * 1024, 1);
    end
  case 'ole'
    s = repmat('x', 1, 65536);
    while true
      fputs(stdout, s);
    end
  case 'exit'
    exit(3);
end
