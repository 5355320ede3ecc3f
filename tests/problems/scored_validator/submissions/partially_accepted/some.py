input()
print(40)
