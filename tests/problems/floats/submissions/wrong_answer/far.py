print(int(input()) / 2 + 0.01)
