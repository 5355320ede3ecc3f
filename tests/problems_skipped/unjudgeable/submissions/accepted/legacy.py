#!/usr/bin/env python2
print 2 * input()
