input()
print('half')
