print('%.6e' % (int(input()) / 2 + 1e-4))
