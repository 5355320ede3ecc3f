print(input().upper().replace(' ', '  '))
